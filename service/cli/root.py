"""The ``unsource`` command line."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from index import seed, snapshot
from index.errors import UnsourceError, ValidationFailed
from index.ingest import read_threads
from service.admission import admit
from service.cli import insights as insights_report
from service.cli.db import db_app
from service.cli.imports import import_app
from service.cli.keys import keys_app
from service.cli.output import console, err, fail, load_settings, or_exit, progress
from service.cli.triage import triage_app
from service.insights import Gap, gaps_for
from service.runtime import Engine, build_engine

app = typer.Typer(help="unsource: suggest community answers, triage confidential questions.")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"unsource {version('unsource')}")
        except PackageNotFoundError:  # running from a source tree that was never installed
            print("unsource (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    _version_flag: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """unsource: suggest community answers, triage confidential questions."""


demo_app = typer.Typer(help="The bundled demo community.")
app.add_typer(demo_app, name="demo")
app.add_typer(triage_app, name="triage")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
snapshot_app = typer.Typer(help="Checksummed snapshots of the store and the vector index.")
app.add_typer(snapshot_app, name="snapshot")
index_app = typer.Typer(help="The saved vector index.")
app.add_typer(index_app, name="index")
insights_app = typer.Typer(help="What the community asks that nothing answers.")
app.add_typer(insights_app, name="insights")


def _add_plugins() -> None:
    """Commands other packages contribute, as simonw/llm loads its plugins: each entry point
    in the group ``unsource.cli`` is a function given this app (``unsource eval`` and
    ``unsource finetune`` come from the eval package this way)."""
    from importlib.metadata import entry_points

    for plugin in entry_points(group="unsource.cli"):
        plugin.load()(app)


_add_plugins()

DEMO_FILE = Path(__file__).parents[1] / "demo" / "threads.jsonl"


def _engine(with_triage: bool = False, save: bool = True) -> Engine:
    """The engine, for ``with``; only commands that route questions load the triage
    model, and only commands that change the index write it when they leave (``save``)."""
    try:
        engine = build_engine(load_settings(), with_triage=with_triage)
    except UnsourceError as exc:
        raise or_exit(exc) from exc
    engine.save_on_exit = save
    return engine


def _load(engine: Engine, path: Path, fmt: str | None) -> None:
    try:
        loaded = read_threads(path, fmt)
    except ValidationFailed as exc:
        for loc, field, msg in exc.problems[:50]:
            err.print(f"{path}:{loc}: field '{field}': {msg}", highlight=False)
        if len(exc.problems) > 50:
            err.print(f"... and {len(exc.problems) - 50} more")
        raise fail(f"{len(exc.problems)} bad row(s); nothing was loaded") from exc
    threads = loaded.threads
    if loaded.ignored_fields:
        err.print(f"ignored columns that are not thread fields: {sorted(loaded.ignored_fields)}")
    with progress() as bar:
        task = bar.add_task(f"ingest {path.name}", total=len(threads))
        report = engine.ingest(threads, progress=lambda n: bar.advance(task, n))
    engine.corpus.save()
    console.print(
        f"{len(threads)} threads: {len(report.created)} created, {len(report.updated)} updated, "
        f"{len(report.unchanged_text)} with unchanged text (not re-embedded); "
        f"store holds {engine.corpus.count()}"
    )


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(help="JSONL or CSV with the thread fields.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="jsonl or csv (default: by suffix)")
    ] = None,
) -> None:
    """Load threads from FILE. A file with any bad row is refused whole (rows are listed)."""
    if not file.is_file():
        raise fail(f"FILE: no such file: {file}")
    with _engine() as engine:
        _load(engine, file, fmt)


@app.command()
def suggest(
    question: Annotated[str, typer.Argument(help="The question's title (and text).")],
    body: Annotated[str, typer.Option(help="Question body.")] = "",
    k: Annotated[int, typer.Option("-k", min=1, max=50, help="How many suggestions.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Suggest existing threads that answer QUESTION."""
    if not question.strip():
        raise fail("QUESTION: must not be empty")
    with _engine(with_triage=True, save=False) as engine:
        outcome = engine.suggest(question, body, k=k)
    if outcome.result is None:
        t = outcome.triage
        if as_json:
            print(json.dumps({"decision": "staff", "queue": t.queue, "suggestions": [],
                              "reasons": [r.model_dump() for r in t.reasons]}))  # fmt: skip
        else:
            why = "; ".join(f"{r.kind}: {r.detail}" for r in t.reasons)
            console.print(f"[red]staff[/red] / queue {t.queue}: confidential, do not post it "
                          f"publicly. {why}")  # fmt: skip
        return
    result = outcome.result
    rows = [
        {
            "thread_id": h.thread.thread.id,
            "title": h.thread.thread.title,
            "score": round(h.score, 4),
            "similarity": round(h.similarity, 4),
            "url": h.thread.thread.url,
        }
        for h in result.hits
    ]
    if as_json:
        print(json.dumps({"decision": result.decision, "suggestions": rows}, ensure_ascii=False))
        return
    if not rows:
        console.print(f"[yellow]no_match[/yellow] (best similarity {result.best_similarity})")
        return
    table = Table("thread", "title", "similarity", "score")
    for r in rows:
        table.add_row(
            str(r["thread_id"]), str(r["title"]), f"{r['similarity']:.3f}", f"{r['score']:.3f}"
        )
    console.print(table)


@app.command()
def delete(thread_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Delete thread ID from the store, keyword index and vectors."""
    with _engine() as engine:
        if not engine.corpus.delete(thread_id):
            raise fail(f"ID: no thread {thread_id!r}", 1)
        console.print(f"deleted {thread_id}")


@app.command()
def reindex(
    reembed: Annotated[bool, typer.Option(help="Re-encode every thread.")] = False,
) -> None:
    """Rebuild the vector index from the store."""
    with _engine() as engine:
        with progress() as bar:
            task = bar.add_task("reindex", total=engine.corpus.count())
            n = engine.corpus.rebuild(reembed=reembed, progress=lambda m: bar.advance(task, m))
        console.print(f"index rebuilt: {engine.corpus.indexed()} vectors, {n} re-encoded")


@app.command()
def verify(
    sample: Annotated[int, typer.Option(min=0, help="Threads ranked by their own vector.")] = 100,
) -> None:
    """Check the vector index against the store (exit 1 on any difference)."""
    with _engine(save=False) as engine:
        v = engine.corpus.verify(sample)
        console.print_json(data={"ok": v.ok, **asdict(v)})
        if not v.ok:
            raise typer.Exit(1)


@insights_app.command("gaps")
def insights_gaps(
    since: Annotated[
        datetime | None, typer.Option(help="Window start, ISO-8601 (default: 7 days ago).")
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="Window end (default: now).")] = None,
    min_size: Annotated[int, typer.Option(min=2, help="Smallest cluster that is a gap.")] = 3,
    out: Annotated[Path | None, typer.Option(help="Write gaps.md and gaps.png here.")] = None,
) -> None:
    """Clusters of the questions nothing answered (no_match, staff, escalated, posted
    after suggestions, suggestions voted not helpful)."""
    aware = [t if t is None or t.tzinfo else t.replace(tzinfo=UTC) for t in (since, until)]
    with _engine(with_triage=True, save=False) as engine:
        r = gaps_for(engine, aware[0], aware[1], min_size)
    if out is not None:
        console.print(f"wrote {insights_report.write(r.gaps, r.since, r.until, r.questions, out)}")
        return
    console.print_json(
        data={
            "questions": r.questions,
            "sampled": r.sampled,
            "gaps": [_gap_json(g) for g in r.gaps],
        }
    )


def _gap_json(g: Gap) -> dict[str, Any]:
    return {k: v for k, v in asdict(g).items() if k != "members"}


@index_app.command("publish")
def index_publish(
    target: Annotated[Path, typer.Argument(metavar="DIR", help="Where replicas seed from.")],
) -> None:
    """Copy this data dir's saved vector index to DIR (UNSOURCE_INDEX_SEED_DIR of new
    replicas). The service saves its index when it compacts and when it stops."""
    settings = load_settings()
    try:
        name = seed.publish(settings.index_dir, target)
    except UnsourceError as exc:
        raise or_exit(exc) from exc
    console.print(f"published {name} to {target}")


@snapshot_app.command("create")
def snapshot_create(
    path: Annotated[Path, typer.Argument(help="Snapshot file to write (a tar).")],
) -> None:
    """Write the threads and the vector index to PATH, and its SHA-256 to PATH.sha256."""
    with _engine(save=False) as engine:
        try:
            info = snapshot.create(engine.corpus, path)
        except UnsourceError as exc:
            raise fail(f"PATH: {exc}") from exc
    console.print(
        f"snapshot {info.path}: {info.threads} threads, generation {info.generation}, "
        f"sha256 {info.sha256}",
        highlight=False,
        soft_wrap=True,
    )


@snapshot_app.command("restore")
def snapshot_restore(
    path: Annotated[Path, typer.Argument(help="Snapshot file made by `snapshot create`.")],
    sha256: Annotated[
        str | None, typer.Option(help="Expected SHA-256 (default: read from PATH.sha256).")
    ] = None,
) -> None:
    """Replace the store and the index with a verified snapshot (a running service picks
    the change up within UNSOURCE_INDEX_REFRESH_SECONDS)."""
    with _engine(save=False) as engine:
        try:
            info = snapshot.restore(engine.corpus, path, sha256, admit=lambda t: admit([t])[0])
        except UnsourceError as exc:
            raise fail(f"PATH: {exc}") from exc
    console.print(
        f"restored {info.threads} threads from {info.path}", highlight=False, soft_wrap=True
    )


@demo_app.command("load")
def demo_load(
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Only when the store is empty.")
    ] = False,
) -> None:
    """Load the bundled demo community (fictional smart-home product)."""
    with _engine() as engine:
        if if_empty and engine.corpus.count() > 0:
            console.print(f"store already holds {engine.corpus.count()} threads; demo not loaded")
            return
        _load(engine, DEMO_FILE, "jsonl")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port.")] = None,
    dev: Annotated[
        bool, typer.Option("--dev", help="Keyless dev mode (loopback only): no API key needed.")
    ] = False,
) -> None:
    """Serve the HTTP API (needs API keys, or --dev on a loopback address)."""
    import uvicorn

    from service.api.app import behind_proxies, create_app
    from service.observability import configure_logging

    overrides: dict[str, Any] = {"host": host, "port": port, "dev_mode": True if dev else None}
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    try:  # settings fit to serve, then the engine: bad values end here in one line, exit 2
        settings.check_serving()
        app_ = create_app(settings, build_engine(settings))
    except UnsourceError as exc:
        raise or_exit(exc) from exc
    if settings.dev_mode:
        err.print(
            f"[yellow]dev mode:[/yellow] no API key needed; every request acts as admin. "
            f"Listening on {settings.host} only. Demo page: "
            f"http://{settings.host}:{settings.port}/demo",
            highlight=False,
        )
    configure_logging(settings.log_format)
    uvicorn.run(
        behind_proxies(app_, settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,  # behind_proxies applies trusted_proxies, and nothing else
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("sentence_transformers", "transformers", "httpx", "faiss"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    app()
