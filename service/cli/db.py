"""`unsource db`: the activity tables' schema version (Alembic migrations, index/migrate.py).

``upgrade`` is the one command an upgrade of a running deployment needs; it is safe to run
from several replicas at once (they take turns on a lock; the first migrates)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
import typer

from index.migrate import current, head, upgrade
from index.sql import SQLDatabase
from service.cli.output import FAILED, console, fail, load_settings

db_app = typer.Typer(help="The activity tables' schema (versioned migrations).")


@contextmanager
def _database() -> Iterator[SQLDatabase]:
    settings = load_settings()
    db = SQLDatabase.open(settings.database_url, settings.activity_path)
    try:
        yield db
    except sa.exc.SQLAlchemyError as exc:
        raise fail(f"database: {getattr(exc, 'orig', None) or exc}", FAILED) from exc
    finally:
        db.close()


@db_app.command("upgrade")
def upgrade_command() -> None:
    """Migrate the activity tables to this version's schema (a no-op when they are)."""
    with _database() as db:
        before = current(db.engine)
        upgrade(db.writer)
        console.print(f"activity schema: {before or 'empty'} -> {head()}")


@db_app.command("current")
def current_command() -> None:
    """Print the activity tables' schema revision and this code's head."""
    with _database() as db:
        at = current(db.engine)
        console.print_json(data={"current": at, "head": head(), "up_to_date": at == head()})
