"""`unsource db`: the schema versions of the thread store and the activity tables (Alembic
migrations, index/migrate.py; scripts in index/store/migrations/ and index/migrations/).

``upgrade`` is the one command an upgrade of a running deployment needs; it is safe to run
from several replicas at once (they take turns on a lock; the first migrates)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
import typer

from index.errors import StoreError
from index.migrate import ACTIVITY, THREADS
from index.sql import SQLDatabase
from index.store.factory import open_store
from service.cli.output import FAILED, console, fail, load_settings

db_app = typer.Typer(help="The thread store's and the activity tables' schemas (migrations).")


@contextmanager
def _databases() -> Iterator[tuple[sa.Engine, SQLDatabase]]:
    """The thread store's engine (opening it brings its schema to head) and the activity
    database."""
    settings = load_settings()
    db = SQLDatabase.open(settings.database_url, settings.activity_path)
    try:
        store = open_store(settings.database_url, settings.database_path, 1, 0)
        try:
            yield store.db.engine, db
        finally:
            store.close()
    except (sa.exc.SQLAlchemyError, StoreError) as exc:
        raise fail(f"database: {getattr(exc, 'orig', None) or exc}", FAILED) from exc
    finally:
        db.close()


@db_app.command("upgrade")
def upgrade_command() -> None:
    """Migrate both schemas to this version's (a no-op when they are there)."""
    with _databases() as (threads, db):
        console.print(f"thread store schema: {THREADS.current(threads)} (head {THREADS.head})")
        before = ACTIVITY.current(db.engine)
        ACTIVITY.upgrade(db.writer)
        console.print(f"activity schema: {before or 'empty'} -> {ACTIVITY.newest()}")


@db_app.command("current")
def current_command() -> None:
    """Print the activity tables' schema revision and this code's head (and, under
    ``threads``, the same for the thread store)."""
    with _databases() as (threads, db):
        at = ACTIVITY.current(db.engine)
        store_at = THREADS.current(threads)
        console.print_json(
            data={
                "current": at, "head": ACTIVITY.newest(), "up_to_date": at == ACTIVITY.newest(),
                "threads": {
                    "current": store_at, "head": THREADS.head,
                    "up_to_date": store_at == THREADS.head,
                },
            }
        )  # fmt: skip
