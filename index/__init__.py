"""Durable thread store (SQL, source of truth) and the derived FAISS vector index."""
