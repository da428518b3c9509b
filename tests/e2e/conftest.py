"""Fixtures of the end-to-end tests: the demo brand (a small one, built by `tutti.audience.demo.build`, which
also runs every part's demo builder) wired to the LINE emulator fixture, served by a live uvicorn server,
with Chromium from tests/web/conftest.py.

Each test builds its own brand on a fresh database (SQLite, then PostgreSQL), as `./scripts/demo` would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from tests.channels.emulator import LineEmulator, line_emulator  # noqa: F401 - the LINE emulator fixture
from tests.conftest import serving
from tests.web.conftest import browser  # noqa: F401 - Chromium, skipped when /usr/bin/chromium is missing

DEMO_CONTACTS = 300
DEMO_SEED = 42


@dataclass
class Demo:
    url: str  # the live server
    workspace_id: int
    email: str
    password: str
    emulator: LineEmulator


@pytest.fixture(scope="session")
def vector_cache_path(tmp_path_factory):
    return os.environ.get("TUTTI_TEST_VECTOR_CACHE") or tmp_path_factory.mktemp("vectors") / "embeddings.sqlite"


@pytest.fixture
def vector_cache(vector_cache_path):
    """The demo knowledge base's phrasings are embedded on the first question of each new database (at test
    sizes the demo build leaves it to then); a file shared by the session's tests pays that once (minutes of
    CPU on a busy machine). TUTTI_TEST_VECTOR_CACHE names a file kept between runs (e.g. a copy of
    tutti-data/cache/embeddings.sqlite). Switched on per test only: other tests must see real embed calls."""
    from tutti.ai import embeddings

    embeddings.use_disk_cache(vector_cache_path)
    yield vector_cache_path
    embeddings.use_disk_cache(None)


@pytest.fixture
def demo_brand(database, line_emulator):  # noqa: F811
    """The demo brand at DEMO_CONTACTS members, its LINE channel pointed at the emulator fixture."""
    from tutti.audience import demo
    from tutti.platform.config import reset_settings

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUTTI_LINE_EMULATOR_URL", line_emulator.base_url)  # read by tutti.channels.demo
        reset_settings()
        try:
            info = demo.build(database, contacts=DEMO_CONTACTS, seed=DEMO_SEED)
        finally:
            reset_settings()
    assert info.created and info.contacts == DEMO_CONTACTS
    return info


@pytest.fixture
def demo(settings, database, demo_brand, line_emulator):  # noqa: F811
    from tutti.web.app import create_app

    with serving(create_app(settings, run_worker=False)) as url:
        yield Demo(url=url, workspace_id=demo_brand.workspace_id, email=demo_brand.email, password=demo_brand.password,
                   emulator=line_emulator)


def new_context(browser, demo: Demo, **options):  # noqa: F811
    options = {"viewport": {"width": 1400, "height": 900}, "locale": "zh-TW", **options}
    context = browser.new_context(base_url=demo.url, **options)
    context.set_default_timeout(20_000)
    return context


def sign_in(page, demo: Demo) -> None:
    """The demo owner signs in with the password `tutti demo` prints."""
    page.goto("/login")
    page.fill("input[name=email]", demo.email)
    page.fill("input[name=password]", demo.password)
    page.click("button[type=submit]")
    page.wait_for_url(demo.url + "/")


def prepare_knowledge(database, workspace_id: int) -> None:
    """What the knowledge job does after an import: embed the demo's phrasings (from the vector cache) and fit
    the workspace's calibration, so the first question is answered as in a running deployment."""
    from tutti.converse.knowledge.jobs import embed_and_calibrate

    embed_and_calibrate(database, workspace_id=workspace_id)


def handoff_words(database, workspace_id: int) -> str:
    """What the customer is told on a hand-off to the default team: that a person will answer, within its
    business hours, or the team's out-of-hours message (these tests run at any hour)."""
    from tutti.converse.agents.language import say
    from tutti.converse.conversations import teams

    with database.read_session() as db:
        team = teams.default_team(db, workspace_id=workspace_id)
        if team is None or teams.is_open(db, team):
            return "專人"
        custom = team.out_of_hours_message or {}
        return (custom.get("zh-TW") or say("handoff_closed", "zh-TW"))[:12]
