"""Reading thread files (JSONL or CSV) with every bad row reported by line and field.

Policy: a file is all-or-nothing at validation time. Every row is parsed and validated
before anything is written; if any row is bad, the whole file is refused and each bad
row is reported with its line number and field, so a fixed file can simply be re-run
(ingest is idempotent: unchanged threads are not re-embedded).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from index.errors import ValidationFailed
from index.models import Thread

CSV_LIST_FIELDS = ("tags",)
KNOWN_FIELDS = frozenset(Thread.model_fields)


@dataclass
class ThreadFile:
    """A validated file: its threads, and columns present but not thread fields (ignored)."""

    threads: list[Thread]
    ignored_fields: set[str] = field(default_factory=set)


def _renamed(record: dict[str, object], mapping: Mapping[str, str]) -> dict[str, object]:
    """``mapping``: thread field -> the source's name for it (``--map title=question``)."""
    for name, column in mapping.items():
        if column in record:
            record[name] = record.pop(column)
    return record


def _csv_rows(path: Path, mapping: Mapping[str, str]) -> Iterator[tuple[int, object]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            record: dict[str, object] = {k: v for k, v in row.items() if k is not None and v != ""}
            if None in row:
                record["__extra__"] = row[None]  # more cells than headers
            record = _renamed(record, mapping)
            for name in CSV_LIST_FIELDS:
                value = record.get(name)
                if isinstance(value, str):
                    record[name] = [t for t in value.replace(";", ",").split(",") if t.strip()]
            yield reader.line_num, record


def _jsonl_rows(path: Path, mapping: Mapping[str, str]) -> Iterator[tuple[int, object]]:
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, ValueError(f"invalid JSON: {exc.msg}")
                continue
            yield number, _renamed(record, mapping) if isinstance(record, dict) else record


def read_threads(
    path: Path, fmt: str | None = None, mapping: Mapping[str, str] | None = None
) -> ThreadFile:
    """Parse and validate a whole file; raise ValidationFailed listing every bad row.

    Columns that are not thread fields (a data set's ``split``, say) are ignored and
    reported, so exports with extra columns load; the HTTP API, by contrast, refuses them.
    ``mapping`` renames the source's columns to thread fields first (field -> column).
    """
    mapping = mapping or {}
    unknown = sorted(set(mapping) - KNOWN_FIELDS)
    if unknown:
        raise ValidationFailed([("--map", unknown[0], "not a thread field")])
    path = Path(path)
    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    if fmt not in ("csv", "jsonl"):
        raise ValidationFailed([(str(path), "format", f"unknown format {fmt!r}")])
    rows = _csv_rows(path, mapping) if fmt == "csv" else _jsonl_rows(path, mapping)
    return validate_records(rows, source=str(path))


def validate_records(
    rows: Iterable[tuple[int, object]], source: str = "input", label: str = "line"
) -> ThreadFile:
    """Validate numbered records into threads; raise ValidationFailed listing every bad one."""
    out = ThreadFile([])
    problems: list[tuple[str, str, str]] = []
    first_seen: dict[str, int] = {}
    try:
        for number, record in rows:
            where = f"{label} {number}"
            if isinstance(record, Exception):
                problems.append((where, "-", str(record)))
                continue
            if isinstance(record, dict) and "__extra__" in record:
                problems.append((where, "-", "more cells than header columns"))
                continue
            if isinstance(record, dict):
                extra = set(record) - KNOWN_FIELDS
                out.ignored_fields |= extra
                record = {k: v for k, v in record.items() if k not in extra}
            try:
                thread = Thread.model_validate(record, context={"text": True})  # CSV cells are text
            except ValidationError as exc:
                for err in exc.errors():
                    field = ".".join(str(p) for p in err["loc"]) or "-"
                    problems.append((where, field, err["msg"]))
                continue
            if thread.id in first_seen:
                problems.append((where, "id", f"duplicate of {label} {first_seen[thread.id]}"))
                continue
            first_seen[thread.id] = number
            out.threads.append(thread)
    except (UnicodeDecodeError, csv.Error) as exc:
        problems.append((source, "-", f"unreadable input: {exc}"))
    if problems:
        raise ValidationFailed(problems)
    return out
