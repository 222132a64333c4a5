"""Snapshots: the store's threads and the vector index in one checksummed tar file.

    create(corpus, PATH)    → PATH (tar) and PATH.sha256 (``sha256sum`` format)
    restore(corpus, PATH)   → the store holds exactly the snapshot's threads (same keys),
                               the index is the snapshot's, and other processes' indexes
                               catch up through the change feed

The tar holds ``manifest.json`` (format, embedding space, dimension, thread count, store
generation, SHA-256 of each other member), ``threads.jsonl`` (every field, content hash,
embedding space and vector) and ``vectors.faiss``. ``restore`` checks the whole file
against PATH.sha256 (or ``expected_sha256``), then every member against the manifest,
the embedding space against the configured model, and the index keys against the
threads, before it writes anything; the store is then replaced in one transaction.
A file changed after it was made is refused. (A checksum kept beside the file detects
damage and tampering by someone who cannot also change the .sha256 file; keep a copy
of the digest that ``create`` prints where the snapshot is not.)
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from index.corpus import Corpus
from index.errors import UnsourceError
from index.files import fsync_path, sha256_file, sha256_stream
from index.models import Thread
from index.store.protocol import Exported, StoredThread
from index.vectors import layered as vectors

FORMAT = 1
MANIFEST = "manifest.json"
THREADS = "threads.jsonl"
INDEX = "vectors.faiss"
MEMBERS = {MANIFEST, THREADS, INDEX}


# the embedding model of a row whose text changed on restore: no space matches it, so a
# rebuild after a crash before its re-encoding re-encodes it
STALE = "stale:admitted-on-restore"


class SnapshotError(UnsourceError):
    """A snapshot could not be made, or was refused."""


@dataclass(frozen=True)
class SnapshotInfo:
    path: Path
    sha256: str
    threads: int
    generation: int
    space: str


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


# -- create ----------------------------------------------------------------------------
def _row_json(e: Exported) -> bytes:
    return json.dumps(
        {
            "pk": e.stored.pk,
            "thread": e.stored.thread.model_dump(mode="json"),
            "content_hash": e.content_hash,
            "embed_model": e.embed_model,
            "embedding": base64.b64encode(
                np.ascontiguousarray(e.embedding, dtype="<f4").tobytes()
            ).decode(),
        },
        ensure_ascii=False,
    ).encode()


def _export(corpus: Corpus, out: IO[bytes]) -> tuple[int, int, bytes]:
    """Write the threads and return (count, generation, index bytes), all of one
    generation: retried if another process writes meanwhile."""

    def restart() -> None:
        out.seek(0)
        out.truncate()

    exported = corpus.export(lambda row: out.write(_row_json(row) + b"\n"), restart)
    if exported is None:
        raise SnapshotError("the store kept changing while it was exported; try again")
    return exported


def create(corpus: Corpus, path: Path) -> SnapshotInfo:
    """Write a snapshot to ``path`` (and ``path``.sha256), atomically: a crash leaves no
    file or a complete one."""
    path = Path(path)
    if path.exists():
        raise SnapshotError(f"{path} exists; snapshots are never overwritten")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    rows_tmp = path.with_name(path.name + ".rows.tmp")
    made: list[Path] = []  # temp files this call created (never one planted beside it)
    try:
        with _exclusive(rows_tmp, made, "w+b") as rows:
            count, generation, index_bytes = _export(corpus, rows)
            rows.flush()
            rows.seek(0)
            manifest = {
                "format": FORMAT,
                "created_at": datetime.now(UTC).isoformat(),
                "space": corpus.space,
                "dimension": corpus.dimension,
                "threads": count,
                "generation": generation,
                "store_id": corpus.store_id(),
                "files": {THREADS: sha256_file(rows_tmp), INDEX: _sha(index_bytes)},
            }
            with _exclusive(tmp, made, "wb") as fh:
                with tarfile.open(fileobj=fh, mode="w") as tar:
                    _add(tar, MANIFEST, io.BytesIO(json.dumps(manifest, indent=2).encode()))
                    _add(tar, THREADS, rows)
                    _add(tar, INDEX, io.BytesIO(index_bytes))
                fh.flush()
                os.fsync(fh.fileno())
        digest = sha256_file(tmp)
        side_tmp = sidecar(path).with_name(sidecar(path).name + ".tmp")
        with _exclusive(side_tmp, made, "wb") as fh:
            fh.write(f"{digest}  {path.name}\n".encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        made.remove(tmp)
        os.replace(side_tmp, sidecar(path))
        made.remove(side_tmp)
        fsync_path(path.parent)
    except OSError as exc:
        if tmp not in made:  # renamed into place already: the snapshot is incomplete
            path.unlink(missing_ok=True)
        raise SnapshotError(f"snapshot not written: {exc}") from exc
    finally:
        for leftover in made:
            leftover.unlink(missing_ok=True)
    return SnapshotInfo(path, digest, count, generation, corpus.space)


def _exclusive(path: Path, made: list[Path], mode: str) -> IO[bytes]:
    """Create ``path`` new (O_EXCL | O_NOFOLLOW): a file or symlink planted there is refused,
    never followed or overwritten."""
    flags = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | (os.O_RDWR if "+" in mode else os.O_WRONLY)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError as exc:
        raise SnapshotError(f"{path} exists (a leftover or planted file): remove it first") from exc
    made.append(path)
    return os.fdopen(fd, mode)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _add(tar: tarfile.TarFile, name: str, data: IO[bytes]) -> None:
    data.seek(0, os.SEEK_END)
    info = tarfile.TarInfo(name)
    info.size = data.tell()
    info.mode = 0o600
    data.seek(0)
    tar.addfile(info, data)


# -- restore ---------------------------------------------------------------------------
def _expected_digest(path: Path, expected: str | None) -> str:
    if expected:
        return expected.strip().lower()
    try:
        return sidecar(path).read_text().split()[0].lower()
    except (FileNotFoundError, IndexError) as exc:
        raise SnapshotError(
            f"no checksum for {path.name}: keep {sidecar(path).name} beside it or pass --sha256"
        ) from exc


MAX_MANIFEST_BYTES = 64 * 1024


class Manifest(BaseModel):
    """The snapshot's manifest.json; a missing or wrong field is refused by name."""

    model_config = ConfigDict(extra="ignore")
    format: int
    space: str
    dimension: int = Field(gt=0, le=65536)
    threads: int = Field(ge=0)
    generation: int = Field(ge=0)
    files: dict[str, str]


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    fh = tar.extractfile(name)
    if fh is None:
        raise SnapshotError(f"snapshot member {name} is not a file")
    return fh


def _private_copy(path: Path, expected_sha256: str | None, into: Path) -> Path:
    """Copy the snapshot into a private file while hashing it, in one pass over one
    descriptor, and check the digest: everything after reads the bytes that were verified,
    whatever happens to ``path`` meanwhile."""
    if not path.is_file():
        raise SnapshotError(f"{path}: no such snapshot file")
    expected = _expected_digest(path, expected_sha256)
    into.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".restore-", dir=into)
    copy = Path(name)
    h = hashlib.sha256()
    try:
        with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
            while block := src.read(1 << 20):
                h.update(block)
                dst.write(block)
    except FileNotFoundError as exc:
        copy.unlink(missing_ok=True)
        raise SnapshotError(f"{path}: no such snapshot file") from exc
    except BaseException:
        copy.unlink(missing_ok=True)
        raise
    if h.hexdigest() != expected:
        copy.unlink(missing_ok=True)
        raise SnapshotError(f"{path.name}: SHA-256 does not match; the file was changed or damaged")
    return copy


def _verify(copy: Path, name: str) -> Manifest:
    """Check a verified private copy's members and manifest; return the manifest. Member
    sizes are bounded by the file's own (a sparse member could claim gigabytes)."""
    size = copy.stat().st_size
    try:
        with tarfile.open(copy, mode="r:") as tar:
            members = {m.name: m for m in tar.getmembers()}
            if set(members) != MEMBERS or not all(m.isfile() for m in members.values()):
                raise SnapshotError(f"snapshot must hold exactly {sorted(MEMBERS)}")
            for m in members.values():
                if m.issparse() or m.size > size:
                    raise SnapshotError(f"snapshot member {m.name}: {m.size} bytes, file {size}")
            if members[MANIFEST].size > MAX_MANIFEST_BYTES:
                raise SnapshotError(f"{MANIFEST}: over {MAX_MANIFEST_BYTES} bytes")
            manifest = Manifest.model_validate_json(_member(tar, MANIFEST).read())
            if manifest.format != FORMAT:
                raise SnapshotError(f"{MANIFEST}: format {manifest.format} is not {FORMAT}")
            for member in (THREADS, INDEX):
                if member not in manifest.files:
                    raise SnapshotError(f"{MANIFEST}: field 'files.{member}' is missing")
                if sha256_stream(_member(tar, member)) != manifest.files[member]:
                    raise SnapshotError(f"snapshot member {member} does not match its checksum")
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "-"
        raise SnapshotError(f"{MANIFEST}: field '{field}': {first['msg']}") from exc
    except (tarfile.TarError, ValueError, KeyError, TypeError) as exc:
        raise SnapshotError(f"{name}: not a readable snapshot ({exc})") from exc
    return manifest


def _rows(fh: IO[bytes], dimension: int) -> Iterator[Exported]:
    for n, line in enumerate(fh, start=1):
        try:
            r = json.loads(line)
            vec = np.frombuffer(base64.b64decode(r["embedding"]), dtype="<f4").astype(np.float32)
            if vec.size != dimension:
                raise ValueError(f"vector of {vec.size} values, expected {dimension}")
            thread = Thread.model_validate(r["thread"])
            yield Exported(
                StoredThread(int(r["pk"]), thread), r["content_hash"], r["embed_model"], vec
            )
        except (ValueError, KeyError, TypeError, ValidationError, RecursionError) as exc:
            raise SnapshotError(f"{THREADS} line {n}: {type(exc).__name__}: {exc}") from exc


Admit = Callable[[Thread], Thread]


def _checked_rows(
    fh: IO[bytes], manifest: Manifest, index_ids: set[int], admit: Admit, changed: list[int]
) -> Iterator[Exported]:
    """The rows, streamed and admitted as any write is (ids checked, text redacted); the
    keys of rows whose text admission changed go to ``changed`` (their vectors are of the
    text as it was: marked stale, re-encoded before the index is saved). Raises (inside
    the store's transaction, so nothing is kept) if they are not exactly the manifest's
    count and the index's keys."""
    seen: set[int] = set()
    for e in _rows(fh, manifest.dimension):
        if e.stored.pk in seen or e.stored.pk not in index_ids or len(seen) >= manifest.threads:
            raise SnapshotError(f"{THREADS}: row {e.stored.pk} is duplicated, extra or unindexed")
        seen.add(e.stored.pk)
        try:
            thread = admit(e.stored.thread)
        except UnsourceError as exc:
            raise SnapshotError(f"{THREADS}: row {e.stored.pk}: {exc}") from exc
        if thread != e.stored.thread:
            changed.append(e.stored.pk)
            e = Exported(StoredThread(e.stored.pk, thread), "", STALE, e.embedding)
        yield e
    if seen != index_ids or len(seen) != manifest.threads:
        raise SnapshotError(f"{THREADS}: {len(seen)} rows, manifest says {manifest.threads}")


def restore(
    corpus: Corpus,
    path: Path,
    expected_sha256: str | None = None,
    admit: Admit = lambda thread: thread,
) -> SnapshotInfo:
    """Replace the store and the index with the snapshot's, after every check passed. The
    file is copied privately while its SHA-256 is checked, and only the copy is read.
    Every row passes ``admit`` (the service's admission: a snapshot is input like any
    other); rows it changed are re-encoded."""
    path = Path(path)
    copy = _private_copy(path, expected_sha256, corpus.index_dir)
    try:
        manifest = _verify(copy, path.name)
        if manifest.space != corpus.space:
            raise SnapshotError(
                f"snapshot was embedded as {manifest.space!r}, the service uses "
                f"{corpus.space!r}: restore it with that model, or ingest the threads again"
            )
        with tarfile.open(copy, mode="r:") as tar:
            try:
                index = vectors.from_bytes(_member(tar, INDEX).read(), corpus.layout.nprobe)
            except RuntimeError as exc:
                raise SnapshotError(f"{INDEX}: unreadable ({exc})") from exc
            if index.dimension != manifest.dimension or index.count != manifest.threads:
                raise SnapshotError(f"{INDEX} does not hold exactly the snapshot's threads")
            ids = set(index.ids().tolist())
            changed: list[int] = []
            rows = _checked_rows(_member(tar, THREADS), manifest, ids, admit, changed)
            generation = corpus.install(index, rows, changed)
        digest = sha256_file(copy)
    finally:
        copy.unlink(missing_ok=True)
    return SnapshotInfo(path, digest, manifest.threads, generation, corpus.space)
