"""Snapshots: the store's threads and the vector index in one checksummed tar file.

    create(catalog, PATH)    → PATH (tar) and PATH.sha256 (``sha256sum`` format)
    restore(catalog, PATH)   → the store holds exactly the snapshot's threads (same keys),
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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
from pydantic import ValidationError

from index import vectors
from index.catalog import Catalog
from index.errors import UnsourceError
from index.files import sha256_file, sha256_stream, write_atomic
from index.models import Thread
from index.store import Exported, StoredThread

FORMAT = 1
MANIFEST = "manifest.json"
THREADS = "threads.jsonl"
INDEX = "vectors.faiss"
MEMBERS = {MANIFEST, THREADS, INDEX}


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


def _export(catalog: Catalog, out: IO[bytes]) -> tuple[int, int, bytes]:
    """Write the threads and return (count, generation, index bytes), all of one
    generation: retried if another process writes meanwhile."""
    for _ in range(5):
        with catalog.lock:
            catalog.refresh()
            generation = catalog.generation
            index_bytes = catalog.index.to_bytes()
            out.seek(0)
            out.truncate()
            count = 0
            for batch in catalog.store.iter_export():
                for e in batch:
                    out.write(_row_json(e) + b"\n")
                    count += 1
            if catalog.store.generation() == generation:
                return count, generation, index_bytes
    raise SnapshotError("the store kept changing while it was exported; try again")


def create(catalog: Catalog, path: Path) -> SnapshotInfo:
    """Write a snapshot to ``path`` (and ``path``.sha256), atomically: a crash leaves no
    file or a complete one."""
    path = Path(path)
    if path.exists():
        raise SnapshotError(f"{path} exists; snapshots are never overwritten")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    rows_tmp = path.with_name(path.name + ".rows.tmp")
    try:
        with open(rows_tmp, "w+b") as rows:
            count, generation, index_bytes = _export(catalog, rows)
            rows.flush()
            rows.seek(0)
            manifest = {
                "format": FORMAT,
                "created_at": datetime.now(UTC).isoformat(),
                "space": catalog.space,
                "dimension": catalog.index.dimension,
                "threads": count,
                "generation": generation,
                "store_id": catalog.store.store_id(),
                "files": {THREADS: sha256_file(rows_tmp), INDEX: _sha(index_bytes)},
            }
            with open(tmp, "wb") as fh:
                with tarfile.open(fileobj=fh, mode="w") as tar:
                    _add(tar, MANIFEST, io.BytesIO(json.dumps(manifest, indent=2).encode()))
                    _add(tar, THREADS, rows)
                    _add(tar, INDEX, io.BytesIO(index_bytes))
                fh.flush()
                os.fsync(fh.fileno())
        digest = sha256_file(tmp)
        os.replace(tmp, path)
        write_atomic(sidecar(path), f"{digest}  {path.name}\n".encode())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        raise SnapshotError(f"snapshot not written: {exc}") from exc
    finally:
        rows_tmp.unlink(missing_ok=True)
    return SnapshotInfo(path, digest, count, generation, catalog.space)


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


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    fh = tar.extractfile(name)
    if fh is None:
        raise SnapshotError(f"snapshot member {name} is not a file")
    return fh


def _verify(path: Path, expected_sha256: str | None) -> dict[str, Any]:
    """Check the file, its members and the manifest; return the manifest."""
    if not path.is_file():
        raise SnapshotError(f"{path}: no such snapshot file")
    if sha256_file(path) != _expected_digest(path, expected_sha256):
        raise SnapshotError(f"{path.name}: SHA-256 does not match; the file was changed or damaged")
    try:
        with tarfile.open(path, mode="r:") as tar:
            members = {m.name: m for m in tar.getmembers()}
            if set(members) != MEMBERS or not all(m.isfile() for m in members.values()):
                raise SnapshotError(f"snapshot must hold exactly {sorted(MEMBERS)}")
            manifest: dict[str, Any] = json.loads(_member(tar, MANIFEST).read())
            if manifest.get("format") != FORMAT:
                raise SnapshotError(f"snapshot format {manifest.get('format')!r} is not {FORMAT}")
            for name in (THREADS, INDEX):
                if sha256_stream(_member(tar, name)) != manifest["files"][name]:
                    raise SnapshotError(f"snapshot member {name} does not match its checksum")
    except (tarfile.TarError, ValueError, KeyError, TypeError) as exc:
        raise SnapshotError(f"{path.name}: not a readable snapshot ({exc})") from exc
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
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            raise SnapshotError(f"{THREADS} line {n}: {exc}") from exc


def restore(catalog: Catalog, path: Path, expected_sha256: str | None = None) -> SnapshotInfo:
    """Replace the store and the index with the snapshot's, after every check passed."""
    path = Path(path)
    manifest = _verify(path, expected_sha256)
    if manifest["space"] != catalog.space:
        raise SnapshotError(
            f"snapshot was embedded as {manifest['space']!r}, the service uses "
            f"{catalog.space!r}: restore it with that model, or ingest the threads again"
        )
    with tarfile.open(path, mode="r:") as tar:
        try:
            index = vectors.from_bytes(_member(tar, INDEX).read(), catalog.layout.nprobe)
        except RuntimeError as exc:
            raise SnapshotError(f"{INDEX}: unreadable ({exc})") from exc
        rows = list(_rows(_member(tar, THREADS), int(manifest["dimension"])))
    pks = {e.stored.pk for e in rows}
    if len(rows) != manifest["threads"] or len(pks) != len(rows):
        raise SnapshotError(f"{THREADS}: {len(rows)} rows, manifest says {manifest['threads']}")
    if set(index.ids().tolist()) != pks or index.dimension != manifest["dimension"]:
        raise SnapshotError(f"{INDEX} does not hold exactly the snapshot's threads")
    with catalog.lock:
        generation = catalog.store.replace_all(rows)
        catalog.index, catalog.generation = index, generation
        catalog.save()
    return SnapshotInfo(path, sha256_file(path), len(rows), generation, catalog.space)
