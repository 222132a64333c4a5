"""Alembic environment: always given a connection by index/migrate.py (no alembic.ini).

On PostgreSQL the migration transaction first takes an advisory lock, so replicas that
upgrade at the same moment run it one after another: the first migrates, the others find
the schema at head and do nothing. On SQLite the transaction begins IMMEDIATE, which
serialises processes the same way.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

MIGRATION_LOCK = 7_320_418  # pg_advisory_xact_lock key (the thread store's schema uses ...417)

connection = context.config.attributes["connection"]
context.configure(connection=connection, transaction_per_migration=False)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
    context.run_migrations()
