"""The one convention every ``unsource`` command (and ``python -m eval.*``) follows.

Output goes to stdout (``console``); errors, progress and warnings to stderr (``err``).
Exit codes: 0 done, 1 the work failed (a model, a store, the machine), 2 the input was
wrong: a bad option, file, row or setting, always named in one line (``fail``,
``problems``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from index.errors import UnsourceError, ValidationFailed
from service.config import Settings

console = Console()
err = Console(stderr=True, soft_wrap=True)

BAD_INPUT = 2
FAILED = 1


def fail(message: str, code: int = BAD_INPUT) -> typer.Exit:
    """Print ``error: message`` on stderr; raise the returned ``typer.Exit``."""
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def problems(exc: ValidationFailed, limit: int = 30, prefix: str = "") -> typer.Exit:
    """One line per bad row or field (``prefix`` e.g. the file), then exit 2."""
    shown: Sequence[tuple[str, str, str]] = exc.problems[:limit]
    for loc, field, msg in shown:
        err.print(f"{prefix}{loc}: field '{field}': {msg}", highlight=False)
    if len(exc.problems) > limit:
        err.print(f"... and {len(exc.problems) - limit} more")
    return typer.Exit(BAD_INPUT)


def load_settings(**overrides: Any) -> Settings:
    """The settings (environment, .env, ``overrides``), or one line per bad setting, naming
    it and its environment variable, and exit 2 (no traceback)."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for e in exc.errors():
            name = str(e["loc"][0]) if e["loc"] else "-"
            where = ".".join(str(p) for p in e["loc"])
            err.print(
                f"[red]error:[/red] setting {where} (UNSOURCE_{name.upper()}): {e['msg']}",
                highlight=False,
            )
        raise typer.Exit(BAD_INPUT) from exc
    return settings


def or_exit(exc: UnsourceError) -> typer.Exit:
    """A refused input (a bad policy or data file, a setting not fit to serve) exits 2
    naming its fields; anything else unsource raised on purpose exits 1, in one line."""
    from service.config import ConfigError

    if isinstance(exc, ValidationFailed):
        return problems(exc)
    return fail(str(exc), BAD_INPUT if isinstance(exc, ConfigError) else FAILED)


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )
