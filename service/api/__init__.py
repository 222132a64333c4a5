"""The HTTP layer: the FastAPI app, its middleware, dependencies, schemas and routers."""
