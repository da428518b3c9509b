"""Test fixtures. Every database test runs twice: on SQLite and on the local PostgreSQL server.

PostgreSQL comes from TUTTI_TEST_POSTGRES_URL (default: the local server, user postgres). Each pytest
worker gets its own database, created fresh and migrated once; tables are emptied between tests.
When the server is unreachable the PostgreSQL runs are skipped, except under CI, where that fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="tutti-tests-"))
os.environ["TUTTI_QUEUE_URL"] = "immediate"  # jobs run inline unless a test starts a real consumer
os.environ["TUTTI_DATA_DIR"] = str(_TMP / "data")
os.environ["TUTTI_LOG_JSON"] = "false"
os.environ.setdefault("TUTTI_SECRET_KEY", "test-secret-key-not-for-production")

import pytest  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from tutti.platform import db as tutti_db  # noqa: E402
from tutti.platform import migrate  # noqa: E402
from tutti.platform.audit import Actor  # noqa: E402
from tutti.platform.config import Settings, reset_settings  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get("TUTTI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
ENGINES = ["sqlite", "postgresql"]


def _postgres_reachable() -> str | None:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as error:  # noqa: BLE001 - any failure means "not reachable"
        return str(error).splitlines()[0]


@pytest.fixture(scope="session")
def sqlite_template() -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = _TMP / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url(worker_id: str) -> str:
    problem = _postgres_reachable()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {problem}")
        pytest.skip(f"PostgreSQL is not reachable: {problem}")
    name = f"tutti_test_{worker_id}_{os.getpid()}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    yield url
    tutti_db.get_database().dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def worker_id(request) -> str:
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


def _empty_postgres(url: str) -> None:
    database = tutti_db.configure(url)
    tables = [t.name for t in migrate.all_metadata().sorted_tables]
    with database.engine.begin() as connection:
        connection.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))


@pytest.fixture(params=ENGINES)
def database_url(request, tmp_path) -> str:
    """The URL of an empty, migrated database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "tutti.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    _empty_postgres(url)
    return url


@pytest.fixture
def database(database_url) -> tutti_db.Database:
    database = tutti_db.configure(database_url)
    yield database
    if database.dialect == "sqlite":
        database.dispose()


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    reset_settings()
    return Settings(database_url=database_url, queue_url="immediate", data_dir=tmp_path / "data", secret_key="test-secret", log_json=False)


@pytest.fixture
def make_workspace(database):
    """Create a workspace; returns (workspace id, admin API key, write key)."""
    from tutti.platform import workspaces

    def make(name: str = "Shop", role: str = "admin"):
        with database.session() as db:
            workspace = workspaces.create_workspace(db, name=name)
            key = workspaces.create_api_key(db, workspace_id=workspace.id, name="test", role=role, actor=Actor.cli())
            return workspace.id, key.key, workspace.write_key

    return make


@pytest.fixture
def workspace_id(make_workspace) -> int:
    return make_workspace("Test Shop")[0]


@pytest.fixture
def app(settings, database):
    from tutti.web.app import create_app

    return create_app(settings, run_worker=False)


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as test_client:
        yield test_client


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def serving(app):
    """The app in a real uvicorn server on a free loopback port, in a background thread; yields its URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
