"""Applying the Alembic migrations that ship inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def all_metadata() -> MetaData:
    """The metadata of every part's tables (importing the models registers them)."""
    import tutti.audience.models
    import tutti.channels.models
    import tutti.converse.models
    import tutti.platform.models
    import tutti.reach.models  # noqa: F401
    from tutti.platform.db import Base

    return Base.metadata


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    from tutti.platform.db import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()
