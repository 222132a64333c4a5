"""Labelled routing data: CSV files of ``text`` plus either an intent column mapped through a
``routes.csv`` (``intent,route,queue``) or ``route``/``queue`` columns of their own.

Every bad row is reported with its line and field (ValidationFailed); nothing is half-read.
"""

from __future__ import annotations

import csv
import html
import re
from dataclasses import dataclass
from pathlib import Path

from index.errors import ValidationFailed
from triage.lexicon import QUEUES

BUNDLED = Path(__file__).resolve().parent / "data"  # shipped as package data
SEED_EXAMPLES = BUNDLED / "seed_examples.csv"
# hand-written community and confidential questions in en/pt/es/it, many domains
MULTILINGUAL_EXAMPLES = BUNDLED / "multilingual_examples.csv"
FORUM_LABELS = BUNDLED / "sumo_labels.csv"  # staff labels for SUMO forum question ids
SEED_WEIGHT = 5.0  # training weight of the hand-written examples against the data sets

INTENT_COLUMNS = ("intent", "category", "label")
ROUTES = ("staff", "community")


@dataclass(frozen=True)
class Route:
    route: str
    queue: str  # "" for community


@dataclass(frozen=True)
class Labelled:
    text: str
    label: str  # "<source>:<intent>", or "<source>:<route>[:<queue>]" for pre-routed files
    route: str
    queue: str
    language: str = ""  # from an optional ``language`` column, for per-language reports
    domain: str = ""  # from an optional ``domain`` column, for per-domain reports


def read_routes(path: Path) -> dict[str, Route]:
    problems: list[tuple[str, str, str]] = []
    routes: dict[str, Route] = {}
    rows = _read_csv(path, required=("intent", "route"))
    for line, row in rows:
        try:
            routes[row["intent"]] = _route(row.get("route", ""), row.get("queue", ""))
        except ValueError as exc:
            field, msg = exc.args
            problems.append((f"{path}: line {line}", field, msg))
    if problems:
        raise ValidationFailed(problems)
    return routes


def read_labelled(path: Path, routes: dict[str, Route] | None, source: str) -> list[Labelled]:
    """Rows of ``path``; with an intent column the route comes from ``routes``."""
    header, rows = _header(path), _read_csv(path, required=("text",))
    intent_col = next((c for c in INTENT_COLUMNS if c in header), None)
    if intent_col is None and "route" not in header:
        raise ValidationFailed(
            [(str(path), "header", f"needs one of {INTENT_COLUMNS} (with --routes) or 'route'")]
        )
    if intent_col is not None and routes is None and "route" not in header:
        raise ValidationFailed([(str(path), "routes", "an intent column needs a routes file")])
    out: list[Labelled] = []
    problems: list[tuple[str, str, str]] = []
    for line, row in rows:
        where = f"{path}: line {line}"
        text = row.get("text", "").strip()
        lang = row.get("language", "").strip()
        domain = row.get("domain", "").strip()
        if not text:
            problems.append((where, "text", "empty"))
            continue
        try:
            if intent_col is not None and routes is not None:
                intent = row.get(intent_col, "")
                if intent not in routes:
                    raise ValueError(intent_col, f"intent {intent!r} is not in the routes file")
                r = routes[intent]
                out.append(Labelled(text, f"{source}:{intent}", r.route, r.queue, lang, domain))
            else:
                r = _route(row.get("route", ""), row.get("queue", ""))
                label = f"{source}:{r.route}" + (f":{r.queue}" if r.queue else "")
                out.append(Labelled(text, label, r.route, r.queue, lang, domain))
        except ValueError as exc:
            field, msg = exc.args
            problems.append((where, field, msg))
    if problems:
        raise ValidationFailed(problems)
    return out


def expand_sources(data: list[Path], routes: list[Path]) -> list[tuple[Path, Path | None, str]]:
    """(csv, routes, source name) for each ``--data``: a directory stands for its
    ``train.csv`` and ``oos_train.csv`` with its own ``routes.csv``; ``--routes`` given once
    applies to every file, or once per ``--data`` in order."""
    if routes and len(routes) not in (1, len(data)):
        raise ValidationFailed([("--routes", "routes", "give one routes file, or one per --data")])
    out: list[tuple[Path, Path | None, str]] = []
    for i, path in enumerate(data):
        explicit = routes[0] if len(routes) == 1 else (routes[i] if routes else None)
        if path.is_dir():
            files = [p for p in (path / "train.csv", path / "oos_train.csv") if p.exists()]
            if not files:
                raise ValidationFailed([(str(path), "data", "no train.csv in this directory")])
            table = explicit or path / "routes.csv"
            out += [(f, table, path.name) for f in files]
        elif path.is_file():
            out.append((path, explicit, path.parent.name or path.stem))
        else:
            raise ValidationFailed([(str(path), "data", "no such file or directory")])
    return out


def read_sources(sources: list[tuple[Path, Path | None, str]]) -> list[Labelled]:
    rows: list[Labelled] = []
    tables: dict[Path, dict[str, Route]] = {}
    for path, table, source in sources:
        if table is not None and table not in tables:
            tables[table] = read_routes(table)
        rows += read_labelled(path, tables.get(table) if table else None, source)
    return rows


def _route(route: str, queue: str) -> Route:
    route, queue = route.strip(), queue.strip()
    if route not in ROUTES:
        raise ValueError("route", f"must be one of {ROUTES}, got {route!r}")
    if route == "staff" and queue not in QUEUES:
        raise ValueError("queue", f"a staff route needs a queue in {QUEUES}, got {queue!r}")
    if route == "community" and queue:
        raise ValueError("queue", "a community route has no queue")
    return Route(route, queue)


def _header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return next(csv.reader(fh), [])
    except OSError as exc:
        raise ValidationFailed([(str(path), "-", str(exc))]) from exc


def _read_csv(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise ValidationFailed([(str(path), "header", f"missing column(s) {missing}")])
            return [(reader.line_num, {k: v or "" for k, v in row.items() if k}) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValidationFailed([(str(path), "-", str(exc))]) from exc


_TAG = re.compile(r"<[^>]{0,2000}>")
FORUM_BODY_CHARS = 300


def read_forum(path: Path, labels: Path | None, source: str = "forum") -> list[Labelled]:
    """A forum export (SUMO/Kitsune CSV: ``id,title,content,...``; content is HTML) as
    community questions, title + the start of the body, except the ids that ``labels``
    (``id,route,queue``) routes otherwise: forum questions are labelled community unless
    someone read them and said so."""
    overrides: dict[str, Route] = {}
    if labels is not None:
        for line, row in _read_csv(labels, required=("id", "route")):
            try:
                overrides[row["id"]] = _route(row.get("route", ""), row.get("queue", ""))
            except ValueError as exc:
                field, msg = exc.args
                raise ValidationFailed([(f"{labels}: line {line}", field, msg)]) from exc
    out = []
    for _, row in _read_csv(path, required=("id", "title")):
        body = html.unescape(_TAG.sub(" ", row.get("content", "")))
        text = " ".join(f"{row['title']}\n{body[:FORUM_BODY_CHARS]}".split())
        if not text:
            continue
        r = overrides.get(row["id"], Route("community", ""))
        label = f"{source}:{r.route}" + (f":{r.queue}" if r.queue else "")
        out.append(Labelled(text, label, r.route, r.queue, "en", f"forum:{path.stem[:12]}"))
    return out


def training_examples(
    data: list[Path],
    routes: list[Path] | None = None,
    seed: bool = True,
    forum: list[Path] | None = None,
    forum_labels: Path = FORUM_LABELS,
) -> list[Labelled]:
    """Every example the classifier is trained on: the labelled ``data`` (with their
    ``routes`` tables), the bundled seed examples, and ``forum`` questions (community,
    except those ``forum_labels`` routes otherwise), each file checked."""
    sources = expand_sources(data, routes or [])
    if seed:
        sources += [(SEED_EXAMPLES, None, "seed"), (MULTILINGUAL_EXAMPLES, None, "seed")]
    examples = read_sources(sources)
    for path in forum or []:
        if not path.is_file():
            raise ValidationFailed([(str(path), "forum", "no such file")])
        examples += read_forum(path, forum_labels, "forum")
    return examples
