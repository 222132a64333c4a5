"""Versioned schema migrations (Alembic): the activity tables (scripts in
index/migrations/versions/) and the thread store (index/store/migrations/versions/), each
with its own version table, so both can live in one PostgreSQL database.

``upgrade`` runs when a store opens and from ``unsource db upgrade``; several replicas may
run it at once: they take turns on a database lock (``run_env``, called by each
``env.py``). A new thread store is created from its one schema (index/store/tables.py) and
stamped at head, as Alembic's cookbook builds an up-to-date database from scratch; an
existing one is migrated.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config


@dataclass(frozen=True)
class Migrations:
    """One schema's migration scripts, its version table and its database lock."""

    location: Path
    head: str  # the newest revision in versions/ (tests check it is): a store that is up to
    # date opens without importing Alembic (0.25 s of every start)
    version_table: str
    lock: int  # pg_advisory_xact_lock key

    def config(self) -> Config:
        from alembic.config import Config  # imported when a store migrates, not before

        config = Config()
        config.set_main_option("script_location", str(self.location))
        config.attributes["version_table"] = self.version_table
        config.attributes["lock"] = self.lock
        return config

    def newest(self) -> str:
        """The newest revision the scripts know (what ``head`` must say)."""
        from alembic.script import ScriptDirectory

        revision = ScriptDirectory.from_config(self.config()).get_current_head()
        assert revision is not None
        return revision

    def current(self, engine: Engine) -> str | None:
        """The revision the database is at (None: never migrated)."""
        from alembic.runtime.migration import MigrationContext

        with engine.connect() as conn:
            options = {"version_table": self.version_table}
            return MigrationContext.configure(conn, opts=options).get_current_revision()

    def upgrade(self, engine: Engine, revision: str = "head") -> None:
        """Bring the schema to ``revision``; a no-op when it is there already. Processes
        take turns on a database lock (``run_env``); threads of one process on this lock."""
        if revision == "head" and self._at_head(engine):
            return
        from alembic import command

        config = self.config()
        with _ONE_AT_A_TIME, engine.connect() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            conn.commit()

    def create_or_upgrade(
        self, engine: Engine, exists: Callable[[Connection], bool], create: Callable[..., None]
    ) -> None:
        """A new database: ``create(conn)`` from the current schema, then stamped at head,
        under the lock; one that ``exists``: ``upgrade``. ``engine`` must write (on SQLite
        its transactions begin IMMEDIATE)."""
        if self._at_head(engine):
            return
        with _ONE_AT_A_TIME, engine.connect() as conn:
            _take_lock(conn, self.lock)
            fresh = not exists(conn)
            if fresh:
                from alembic.runtime.migration import MigrationContext
                from alembic.script import ScriptDirectory

                create(conn)
                context = MigrationContext.configure(
                    conn, opts={"version_table": self.version_table}
                )
                context.stamp(ScriptDirectory.from_config(self.config()), "head")
            conn.commit()
        if not fresh:
            self.upgrade(engine)

    def _at_head(self, engine: Engine) -> bool:
        """The recorded revision is ``head`` (a plain query; False if never migrated)."""
        try:
            with engine.connect() as conn:
                version = conn.execute(
                    sa.text(f"SELECT version_num FROM {self.version_table}")
                ).scalar()
        except sa.exc.DBAPIError:  # no version table yet
            return False
        return version == self.head


_ONE_AT_A_TIME = threading.Lock()  # Alembic's ``op``/``context`` are process-global
_HERE = Path(__file__).parent

ACTIVITY = Migrations(_HERE / "migrations", "0007", "alembic_version", 7_320_418)
THREADS = Migrations(_HERE / "store" / "migrations", "t0001", "thread_schema_version", 7_320_417)


def _take_lock(conn: Connection, lock: int) -> None:
    """PostgreSQL: this transaction's advisory lock (SQLite: the writer's BEGIN IMMEDIATE,
    which the first statement starts, serialises processes the same way)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(lock)))


def run_env(context: Any) -> None:
    """The body of each Alembic ``env.py``: always given a connection by ``Migrations``
    (no alembic.ini), one transaction for all the steps, taken under the schema's lock so
    that replicas upgrading at the same moment run one after another: the first migrates,
    the others find the schema at head and do nothing."""
    attributes = context.config.attributes
    connection = attributes["connection"]
    context.configure(
        connection=connection,
        transaction_per_migration=False,
        version_table=attributes["version_table"],
    )
    with context.begin_transaction():
        _take_lock(connection, attributes["lock"])
        context.run_migrations()


# the activity tables' schema, as `unsource db` and the activity store use it
def head() -> str:
    """The newest revision of the activity tables this code knows."""
    return ACTIVITY.newest()


def current(engine: Engine) -> str | None:
    """The activity tables' revision (None: never migrated)."""
    return ACTIVITY.current(engine)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the activity tables to ``revision``."""
    ACTIVITY.upgrade(engine, revision)


HEAD = ACTIVITY.head
