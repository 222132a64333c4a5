"""HTTP API (FastAPI), CLI and the wiring between them and the library."""
