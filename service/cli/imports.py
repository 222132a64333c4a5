"""``unsource import ...``: bring a forum's existing threads in.

- ``import stackexchange DIR|FILE.7z``: a Stack Exchange data dump (index/sources/stackexchange.py);
- ``import discourse --url URL [--api-key ...]``: a Discourse forum (index/sources/discourse.py);
- ``import jsonl|csv FILE [--map field=column,...]``: any other export.

Each reads and checks its whole input before writing anything (a bad input is refused
with a one-line error and exit code 2, nothing imported), shows a progress bar with the
throughput, and ends with a summary: imported (created, updated, unchanged), skipped with
reasons. Importing again is idempotent: unchanged threads are not re-embedded.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from index.corpus import UpsertReport
from index.errors import UnsourceError, ValidationFailed
from index.ingest import read_threads
from index.models import Thread
from index.sources.discourse import DiscourseClient, DiscourseError, Seen, crawl
from index.sources.stackexchange import Dump, DumpError
from service.cli.output import (
    BAD_INPUT,
    FAILED,
    console,
    fail,
    load_settings,
    or_exit,
    problems,
    progress,
)
from service.runtime import Engine, batched, build_engine

import_app = typer.Typer(help="Import a forum's threads: Stack Exchange dumps, JSONL or CSV files.")


def _engine() -> Engine:
    try:
        return build_engine(load_settings(), with_triage=False)
    except UnsourceError as exc:
        raise or_exit(exc) from exc


def _write(engine: Engine, batches: Iterable[Sequence[Thread]], total: int) -> UpsertReport:
    """Upsert the batches under a progress bar that shows threads per second."""
    started = time.perf_counter()
    done = 0
    size = engine.settings.ingest_batch_size
    with progress() as bar:
        task = bar.add_task("importing", total=total)

        def advance(n: int) -> None:
            nonlocal done
            done += n
            rate = done / max(time.perf_counter() - started, 1e-9)
            bar.update(task, completed=done, description=f"importing ({rate:.0f} threads/s)")

        # one pipelined ingest over every batch read: the next is encoded while one is written
        chunks = (chunk for batch in batches for chunk in batched(list(batch), size))
        report = engine.ingest_batches(chunks, advance)
        bar.update(task, completed=total)  # the rest were read and skipped (summary below)
    engine.corpus.save()
    return report


def _summary(report: UpsertReport, skipped: dict[str, int], seconds: float) -> None:
    imported = len(report.created) + len(report.updated) + len(report.unchanged_text)
    console.print(
        f"imported {imported} threads in {seconds:.1f} s: {len(report.created)} created, "
        f"{len(report.updated)} updated, {len(report.unchanged_text)} unchanged"
    )
    for reason, count in sorted(skipped.items(), key=lambda kv: -kv[1]):
        console.print(f"skipped {count}: {reason}")


@import_app.command("stackexchange")
def stackexchange(
    path: Annotated[Path, typer.Argument(help="A dump folder (Posts.xml ...) or a site's .7z.")],
    site_url: Annotated[
        str | None,
        typer.Option(
            help="The site's address, for thread links, e.g. https://cooking.stackexchange.com"
        ),
    ] = None,
    prefix: Annotated[
        str, typer.Option(help="Thread id prefix (ids are PREFIX<post id>).")
    ] = "se-",
) -> None:
    """Questions with their accepted (else top-scored) answer; closed duplicates point at
    their original and are not imported."""
    if not path.exists():
        raise fail(f"PATH: no such file or folder: {path}", BAD_INPUT)
    started = time.perf_counter()
    try:
        dump = Dump.open(path)
    except DumpError as exc:
        raise fail(str(exc), BAD_INPUT) from exc
    with dump, _engine() as engine:
        report = _write(engine, dump.threads(prefix, site_url), dump.report.questions)
    _summary(report, dump.report.skipped, time.perf_counter() - started)
    if dump.report.duplicates:
        console.print(f"{len(dump.report.duplicates)} duplicates point at their originals")


def _mapping(spec: str | None) -> dict[str, str]:
    """``title=question,answer=best_answer`` -> {field: column}."""
    out: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        field, sep, column = part.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise fail(f"--map: expected field=column, got {part.strip()!r}", BAD_INPUT)
        out[field.strip()] = column.strip()
    return out


def _file(path: Path, fmt: str, spec: str | None) -> None:
    if not path.is_file():
        raise fail(f"FILE: no such file: {path}", BAD_INPUT)
    started = time.perf_counter()
    try:
        loaded = read_threads(path, fmt, _mapping(spec))
    except ValidationFailed as exc:
        raise problems(exc, 20) from exc
    with _engine() as engine:
        threads = loaded.threads
        size = 256
        batches = (threads[i : i + size] for i in range(0, len(threads), size))
        report = _write(engine, batches, len(threads))
    skipped = {f"column {c} is not a thread field": 1 for c in sorted(loaded.ignored_fields)}
    _summary(report, {}, time.perf_counter() - started)
    for reason in skipped:
        console.print(f"ignored: {reason}")


MapOpt = Annotated[
    str | None,
    typer.Option("--map", help="Rename columns to thread fields: title=question,answer=reply"),
]


@import_app.command("jsonl")
def jsonl(
    file: Annotated[Path, typer.Argument(help="One JSON object per line.")], spec: MapOpt = None
) -> None:
    """Threads from a JSONL export (every line checked before anything is written)."""
    _file(file, "jsonl", spec)


@import_app.command("csv")
def csv_(
    file: Annotated[Path, typer.Argument(help="A CSV export with a header row.")],
    spec: MapOpt = None,
) -> None:
    """Threads from a CSV export (every row checked before anything is written)."""
    _file(file, "csv", spec)


def _checkpoint_path(engine: Engine, url: str) -> Path:
    host = re.sub(r"[^A-Za-z0-9.-]", "_", url.split("://", 1)[-1]).strip("_")
    return engine.settings.data_dir / "imports" / f"discourse-{host}.json"


def _apply(
    engine: Engine, seen: list[Seen], prefix: str, report: UpsertReport, skipped: dict[str, int]
) -> int:
    """One page of topics into the corpus; returns how many threads it removed."""
    threads = [s.thread for s in seen if s.thread is not None]
    if threads:
        report.merge(engine.ingest(threads))
    removed = 0
    for s in seen:
        if s.skipped:
            skipped[s.skipped] = skipped.get(s.skipped, 0) + 1
        if s.remove and engine.corpus.delete(f"{prefix}{s.topic_id}"):
            removed += 1
    return removed


@import_app.command("discourse")
def discourse(
    url: Annotated[str, typer.Option("--url", help="The forum, e.g. https://forum.example.com")],
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar="UNSOURCE_DISCOURSE_API_KEY", help="A read-only API key."),
    ] = None,
    api_username: Annotated[
        str | None, typer.Option("--api-username", help="The key's user (default: system).")
    ] = None,
    category: Annotated[
        str | None, typer.Option("--category", help="Only this category (its slug).")
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option("--since", help="Only topics active since this time (ISO-8601)."),
    ] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Ignore the checkpoint of an unfinished import.")
    ] = False,
    prefix: Annotated[str, typer.Option(help="Thread id prefix.")] = "discourse-",
) -> None:
    """Topics with their accepted (Solved) or most-liked answer. Private categories and
    personal messages are never imported; unlisted or deleted topics are removed. An
    interrupted import resumes from its checkpoint (the last finished page)."""
    if not re.match(r"^https?://[^\s/]+", url):
        raise fail(f"--url: not an http(s) address: {url!r}", BAD_INPUT)
    started = time.perf_counter()
    client = DiscourseClient(url, api_key, api_username)
    report = UpsertReport()
    skipped: dict[str, int] = {}
    removed = 0
    with client, _engine() as engine:
        try:
            categories = client.categories()
        except DiscourseError as exc:
            raise fail(str(exc), BAD_INPUT) from exc
        point = _checkpoint_path(engine, client.url)
        start = 0 if restart or not point.is_file() else int(json.loads(point.read_text())["page"])
        after = since.isoformat() if since else None
        with progress() as bar:
            task = bar.add_task("importing", total=None)
            try:
                for page, seen in crawl(client, categories, start, after, category, prefix):
                    removed += _apply(engine, seen, prefix, report, skipped)
                    point.parent.mkdir(parents=True, exist_ok=True)
                    point.write_text(json.dumps({"url": client.url, "page": page + 1}))
                    done = len(report.created) + len(report.updated) + len(report.unchanged_text)
                    bar.update(task, advance=len(seen), description=f"importing: {done} threads")
            except DiscourseError as exc:
                raise fail(f"{exc} (resume with the same command)", FAILED) from exc
        point.unlink(missing_ok=True)
        engine.corpus.save()
    _summary(report, skipped, time.perf_counter() - started)
    if removed:
        console.print(f"removed {removed} threads (unlisted, deleted or now private)")
    if client.throttled:
        console.print(
            f"rate limited {client.throttled} times (HTTP 429): waited {client.waited:.0f} s"
        )
