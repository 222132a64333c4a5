"""Alembic migrations of the activity tables (run by index/migrate.py)."""
