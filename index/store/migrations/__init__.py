"""Alembic migrations of the thread store (run by index/migrate.py, ``THREADS``)."""
