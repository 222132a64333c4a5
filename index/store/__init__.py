"""The thread store: the source of truth (SQL, SQLite or PostgreSQL) with its keyword search."""
