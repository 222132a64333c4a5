"""Stack Exchange data dumps (archive.org/details/stackexchange) as threads.

A dump is a folder of XML files, or a site's ``.7z`` archive of them. A question
(``PostTypeId`` 1) becomes a thread: its title, its body as text, the accepted answer or
else the top-scored one as the answer (with its author's display name from Users.xml and
its score as votes), its tags, and its dates. A question closed as a duplicate
(``PostLinks.xml``, ``LinkTypeId`` 3) is not a thread of its own: it is reported with the
original it points at (following chains of duplicates to the end).

Reading is streaming and bounded in memory whatever the dump's size: the XML is read row
by row (``defusedxml``'s ``iterparse``, which refuses entity expansion and external
entities), the rows are staged in a temporary SQLite file, and the threads are produced
from it in batches. Everything is read and checked before the first thread is returned:
a truncated archive or malformed XML fails the import with nothing written.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from index.errors import UnsourceError
from index.models import MAX_ANSWER, MAX_BODY, MAX_TAGS, MAX_TITLE, Thread
from index.sources.html_text import html_to_text

FILES = ("Posts.xml", "PostLinks.xml", "Users.xml")
DUPLICATE = "3"  # PostLinks LinkTypeId of "closed as duplicate of"
BATCH = 500


class DumpError(UnsourceError):
    """A dump that cannot be read (missing file, truncated archive, bad or unsafe XML)."""


@dataclass
class DumpReport:
    questions: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    duplicates: dict[str, str] = field(default_factory=dict)  # duplicate id -> original id
    # a duplicate's own question (title, then body), to check it finds its original
    duplicate_text: dict[str, str] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def _rows(stream: IO[bytes], name: str) -> Iterator[dict[str, str]]:
    """The ``<row .../>`` attributes of one dump file, one at a time, memory freed as read."""
    try:
        for _, element in iterparse(stream, events=("end",), forbid_dtd=True):
            if element.tag == "row":
                yield dict(element.attrib)
            element.clear()
    except DefusedXmlException as exc:
        raise DumpError(f"{name}: unsafe XML refused ({type(exc).__name__})") from exc
    except SyntaxError as exc:  # ElementTree.ParseError, incl. a file cut short
        raise DumpError(f"{name}: not well-formed XML ({exc})") from exc


def _tags(raw: str) -> list[str]:
    """``<a><b>`` (older dumps) or ``|a|b|`` (newer ones)."""
    parts = raw.replace("><", "|").strip("<>|").split("|") if raw else []
    return [t.strip()[:50] for t in parts if t.strip()][:MAX_TAGS]


class Dump:
    """One dump, staged: ``Dump.open(path)`` reads and checks everything, ``threads()``
    yields batches of threads, ``close()`` removes the staging files."""

    def __init__(self, folder: Path, tmp: tempfile.TemporaryDirectory[str]) -> None:
        self._tmp = tmp
        self.db = sqlite3.connect(Path(tmp.name) / "stage.db")
        self.report = DumpReport()
        self._stage(folder)

    @classmethod
    def open(cls, path: Path) -> Dump:
        tmp = tempfile.TemporaryDirectory(prefix="unsource-se-")
        try:
            folder = _unpacked(path, Path(tmp.name)) if path.suffix == ".7z" else path
            if not (folder / "Posts.xml").is_file():
                raise DumpError(f"{path}: no Posts.xml (a Stack Exchange dump folder or .7z)")
            return cls(folder, tmp)
        except BaseException:
            tmp.cleanup()
            raise

    def close(self) -> None:
        self.db.close()
        self._tmp.cleanup()

    def __enter__(self) -> Dump:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stage(self, folder: Path) -> None:
        db = self.db
        db.executescript(
            "CREATE TABLE q (id INTEGER PRIMARY KEY, title TEXT, body TEXT, tags TEXT,"
            " score INTEGER, accepted INTEGER, created TEXT, active TEXT);"
            "CREATE TABLE a (id INTEGER PRIMARY KEY, parent INTEGER, body TEXT, score INTEGER,"
            " owner INTEGER, owner_name TEXT);"
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);"
            "CREATE TABLE dup (id INTEGER PRIMARY KEY, original INTEGER);"
        )
        with (folder / "Posts.xml").open("rb") as fh:
            for row in _rows(fh, "Posts.xml"):
                kind = row.get("PostTypeId")
                if kind == "1":
                    db.execute(
                        "INSERT OR REPLACE INTO q VALUES (?,?,?,?,?,?,?,?)",
                        (int(row["Id"]), " ".join(row.get("Title", "").split()),
                         html_to_text(row.get("Body", "")),
                         row.get("Tags", ""), int(row.get("Score", 0) or 0),
                         int(row["AcceptedAnswerId"]) if row.get("AcceptedAnswerId") else None,
                         row.get("CreationDate"), row.get("LastActivityDate")),
                    )  # fmt: skip
                elif kind == "2" and row.get("ParentId"):
                    db.execute(
                        "INSERT OR REPLACE INTO a VALUES (?,?,?,?,?,?)",
                        (int(row["Id"]), int(row["ParentId"]), html_to_text(row.get("Body", "")),
                         int(row.get("Score", 0) or 0),
                         int(row["OwnerUserId"]) if row.get("OwnerUserId") else None,
                         row.get("OwnerDisplayName")),
                    )  # fmt: skip
        if (folder / "Users.xml").is_file():
            with (folder / "Users.xml").open("rb") as fh:
                db.executemany(
                    "INSERT OR REPLACE INTO users VALUES (?,?)",
                    ((int(r["Id"]), r.get("DisplayName")) for r in _rows(fh, "Users.xml")),
                )
        if (folder / "PostLinks.xml").is_file():
            with (folder / "PostLinks.xml").open("rb") as fh:
                db.executemany(
                    "INSERT OR REPLACE INTO dup VALUES (?,?)",
                    (
                        (int(r["PostId"]), int(r["RelatedPostId"]))
                        for r in _rows(fh, "PostLinks.xml")
                        if r.get("LinkTypeId") == DUPLICATE
                    ),
                )
        db.commit()
        self.report.questions = db.execute("SELECT count(*) FROM q").fetchone()[0]

    def original_of(self, question: int) -> int:
        """The question a duplicate finally points at (chains followed, cycles cut)."""
        seen = {question}
        current = question
        while True:
            row = self.db.execute("SELECT original FROM dup WHERE id = ?", (current,)).fetchone()
            if row is None or row[0] in seen:
                return current
            seen.add(row[0])
            current = row[0]

    def threads(self, prefix: str = "se-", site_url: str | None = None) -> Iterator[list[Thread]]:
        """Batches of threads, in question order; ``report`` counts what was left out."""
        ranked = (
            "WITH ranked AS (SELECT a.*, row_number() OVER (PARTITION BY a.parent"
            "   ORDER BY a.id = q.accepted DESC, a.score DESC, a.id) AS r"
            "   FROM a JOIN q ON q.id = a.parent WHERE a.body != '')"
        )
        # ids only: the questions that will be threads (a duplicate of one is left out)
        importable = {
            r[0]
            for r in self.db.execute(
                ranked + " SELECT q.id FROM q JOIN ranked a ON a.parent = q.id AND a.r = 1"
                " WHERE q.title != ''"
            )
        }
        query = self.db.execute(
            ranked + " SELECT q.id, q.title, q.body, q.tags, q.accepted, q.created, q.active,"
            " a.id, a.body, a.score, coalesce(u.name, a.owner_name),"
            " d.original IS NOT NULL"
            " FROM q"
            " LEFT JOIN ranked a ON a.parent = q.id AND a.r = 1"
            " LEFT JOIN users u ON u.id = a.owner"
            " LEFT JOIN dup d ON d.id = q.id"
            " ORDER BY q.id"
        )
        batch: list[Thread] = []
        for row in query:
            qid, title, aid, duplicate = row[0], row[1], row[7], row[11]
            original = self.original_of(qid) if duplicate else None
            if original is not None and original in importable:
                self.report.duplicates[f"{prefix}{qid}"] = f"{prefix}{original}"
                self.report.duplicate_text[f"{prefix}{qid}"] = f"{title}\n{(row[2] or '')[:1000]}"
                self.report.skip("closed as a duplicate of an imported question")
                continue
            if aid is None:
                self.report.skip("no answer with text (none, or only images)")
                continue
            if not title:
                self.report.skip("empty title")
                continue
            batch.append(_thread(prefix, site_url, row))
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


def _thread(prefix: str, site_url: str | None, row: tuple[Any, ...]) -> Thread:
    qid, title, body, tags, accepted, created, active, aid, answer, score, author, _ = row
    return Thread.model_validate(
        {
            "id": f"{prefix}{qid}",
            "title": title[:MAX_TITLE],
            "body": (body or "")[:MAX_BODY],
            "answer": answer[:MAX_ANSWER],
            "answer_votes": max(-1_000_000, min(1_000_000, int(score or 0))),
            "accepted": accepted is not None and aid == accepted,
            "answer_author": (author or "").strip()[:128] or None,
            "tags": _tags(tags or ""),
            "url": f"{site_url.rstrip('/')}/questions/{qid}" if site_url else None,
            "created_at": f"{created}Z" if created else None,
            "updated_at": f"{active}Z" if active else None,
        }
    )


def _unpacked(archive: Path, into: Path) -> Path:
    """The dump files of a site's ``.7z`` archive, extracted into ``into`` (py7zr checks
    each member's CRC: a truncated or corrupt archive is refused)."""
    import py7zr
    from py7zr.exceptions import ArchiveError

    try:
        with py7zr.SevenZipFile(archive, mode="r") as z:
            wanted = [n for n in z.getnames() if Path(n).name in FILES]
            if not wanted:
                raise DumpError(f"{archive}: the archive holds no Posts.xml")
            z.extract(path=into, targets=wanted)
    except (ArchiveError, OSError, EOFError, ValueError, KeyError) as exc:
        raise DumpError(f"{archive}: not a readable .7z archive ({exc})") from exc
    posts = next((p for p in into.rglob("Posts.xml")), None)
    if posts is None:
        raise DumpError(f"{archive}: the archive holds no Posts.xml")
    return posts.parent
