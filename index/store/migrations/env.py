"""Alembic environment of the thread store: always given a connection by
index/migrate.py (no alembic.ini); the lock and the one transaction are ``run_env``'s."""

from __future__ import annotations

from alembic import context

from index.migrate import run_env

run_env(context)
