"""Versioned schema migrations of the activity tables (Alembic, scripts in
index/migrations/versions/). ``upgrade`` runs when the activity store opens and from
``unsource db upgrade``; several replicas may run it at once (see migrations/env.py)."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    """The newest revision this code knows."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def current(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


_ONE_AT_A_TIME = threading.Lock()  # Alembic's ``op``/``context`` are process-global


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op when it is there already. Processes take
    turns on a database lock (migrations/env.py); threads of one process on this lock."""
    if revision == "head" and current(engine) == head():
        return
    config = _config()
    with _ONE_AT_A_TIME, engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        conn.commit()
