"""Versioned schema migrations of the activity tables (Alembic, scripts in
index/migrations/versions/). ``upgrade`` runs when the activity store opens and from
``unsource db upgrade``; several replicas may run it at once (see migrations/env.py)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0007"  # the newest revision in migrations/versions (tests check it is): lets a store
# that is up to date open without importing Alembic (0.25 s of every start)


def _config() -> Config:
    from alembic.config import Config  # alembic is imported when a store opens, not before

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    """The newest revision this code knows."""
    from alembic.script import ScriptDirectory

    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def current(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


_ONE_AT_A_TIME = threading.Lock()  # Alembic's ``op``/``context`` are process-global


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op when it is there already. Processes take
    turns on a database lock (migrations/env.py); threads of one process on this lock."""
    if revision == "head" and _at_head(engine):
        return
    from alembic import command

    config = _config()
    with _ONE_AT_A_TIME, engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        conn.commit()


def _at_head(engine: Engine) -> bool:
    """The recorded revision is ``HEAD`` (a plain query; False if never migrated)."""
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.DBAPIError:  # no alembic_version table yet
        return False
    return version == HEAD
