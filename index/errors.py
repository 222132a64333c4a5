"""Error hierarchy shared by every layer of unsource."""


class UnsourceError(Exception):
    """Base class for errors unsource raises on purpose."""


class ValidationFailed(UnsourceError):
    """Input was refused; ``problems`` lists (location, field, message) for each fault."""

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        self.problems = problems
        lines = "; ".join(f"{loc}: {field}: {msg}" for loc, field, msg in problems[:20])
        more = f" (+{len(problems) - 20} more)" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} invalid input(s): {lines}{more}")


class IndexMismatch(UnsourceError):
    """A saved vector index cannot be used (missing, corrupt, stale, other model)."""


class StoreError(UnsourceError):
    """The durable store could not complete an operation."""


class EncoderError(UnsourceError):
    """The embedding model failed to load or to encode."""


class IndexSaveError(UnsourceError):
    """The vector index could not be written (the previous saved index still stands)."""
