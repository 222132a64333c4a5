"""`unsource keys`: make API keys. Only the SHA-256 goes into the configuration."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from service.api.auth import Role, digest, new_key

keys_app = typer.Typer(help="API keys for the HTTP service.")
out = Console(soft_wrap=True, highlight=False)


@keys_app.command("create")
def create(
    role: Annotated[Role, typer.Option(help="public (widget), agent (support staff) or admin.")],
    name: Annotated[str, typer.Option(help="A label for logs and rate limits.")] = "",
    json_only: Annotated[bool, typer.Option("--json", help="Print only the JSON entry.")] = False,
) -> None:
    """Print a new random key (shown once) and the entry to add to UNSOURCE_API_KEYS."""
    key = new_key()
    entry = {"name": name or f"{role}-{digest(key)[:8]}", "role": role, "sha256": digest(key)}
    if json_only:
        out.print(json.dumps({"key": key, **entry}))
        return
    out.print(f"key (shown once, give it to the client): {key}")
    out.print("add to UNSOURCE_API_KEYS (a JSON list):")
    out.print(json.dumps(entry))
