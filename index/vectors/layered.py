"""The vector index as the service keeps it: a saved file served with an in-memory layer
of later writes (``LayeredIndex``), saved atomically.

``save`` never writes a live path: it writes the index to a new file (temp, fsync,
rename, fsync dir), then commits by replacing a JSON manifest the same way. The manifest
names that file, the model, dimension, count, the store generation the index reflects and
the file's SHA-256. The indexes themselves are index/vectors/faiss_index.py (one faiss index) and
index/vectors/blocks.py (one per column block); a file holds either, told apart by its first bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from index import files
from index.errors import IndexMismatch, IndexSaveError
from index.vectors import blocks
from index.vectors.blocks import BlockIndex
from index.vectors.faiss_index import (
    EXACT_WITHIN,
    FILTER_PROBE_SHARE,
    FaissIndex,
    FlatIndex,
    IVFIndex,
    Keys,
    VectorIndex,
    as_keys,
    faiss,
    new_index,
    wrap,
)

__all__ = [
    "EXACT_WITHIN", "FILTER_PROBE_SHARE", "BlockIndex", "FlatIndex", "IVFIndex", "Keys",
    "LayeredIndex", "Manifest", "VectorIndex", "blocks_of", "fast_scan_state", "from_bytes",
    "load", "map_file", "new_index", "prepare_fast", "read", "save",
]  # fmt: skip

FORMAT_VERSION = 2
MANIFEST_FILE = "vectors.manifest.json"


@dataclass(frozen=True)
class Manifest:
    model: str
    dimension: int
    count: int
    generation: int
    checksum: str
    normalized: bool = True
    kind: str = "flat"
    format_version: int = FORMAT_VERSION
    file: str = ""  # the index file the manifest commits to
    store_id: str = ""  # the store whose generations ``generation`` counts


class LayeredIndex(VectorIndex):
    """A read-only base (memory-mapped from the saved file, so loading costs no copy and
    replicas share the page cache) plus an in-memory flat delta for later writes and a
    set of base ids deleted since. ``to_bytes`` merges them into one index."""

    def __init__(self, base: FaissIndex | BlockIndex, path: Path) -> None:
        super().__init__(base.dimension)
        self.base = base
        self.path = path
        # held open so ``merged`` can read the file even after a newer save removed it
        self._file = open(path, "rb")  # noqa: SIM115 - lives as long as the index
        self.kind = base.kind
        self.delta = FlatIndex(base.dimension)
        self.dead: set[int] = set()
        self._base_ids = set(base.ids().tolist())
        self._alive_sel: Any = None  # selector excluding ``dead``, rebuilt when it changes
        prepare_fast(base)  # the base is never written: its IVF parts get fast scans

    @property
    def count(self) -> int:
        return self.base.count - len(self.dead) + self.delta.count

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.delta.add(ids, vectors)

    def remove(self, ids: Sequence[int]) -> None:
        gone = {int(i) for i in ids} & self._base_ids
        if gone - self.dead:
            self.dead |= gone
            self._alive_sel = None
        self.delta.remove(ids)

    def _base_search(self, q: np.ndarray, k: int, within: Keys | None) -> list[tuple[int, float]]:
        if within is not None:
            keys = as_keys(within)
            if self.dead:
                keys = keys[~np.isin(keys, as_keys(sorted(self.dead)))]
            return self.base.search(q, k, keys)
        if not self.dead:
            return self.base.search(q, k)
        if len(self.dead) * 4 < k:  # few deletes: over-fetch and drop them
            hits = self.base.search(q, k + len(self.dead))
            return [h for h in hits if h[0] not in self.dead][:k]
        if self._alive_sel is None:
            self._dead_arr = as_keys(sorted(self.dead))
            self._dead_batch = faiss.IDSelectorBatch(self._dead_arr)
            self._alive_sel = faiss.IDSelectorNot(self._dead_batch)
        return self.base.search_selected(q, k, self._alive_sel)

    def search(
        self, query: np.ndarray, k: int, within: Keys | None = None
    ) -> list[tuple[int, float]]:
        hits = self._base_search(query, k, within) + self.delta.search(query, k, within)
        return sorted(hits, key=lambda h: -h[1])[:k]

    def vectors_for(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        in_base = [int(i) in self._base_ids and int(i) not in self.dead for i in ids]
        out = self.base.vectors_for([i for i, b in zip(ids, in_base, strict=True) if b])
        out.update(self.delta.vectors_for([i for i, b in zip(ids, in_base, strict=True) if not b]))
        return out

    def ids(self) -> np.ndarray:
        base = np.array(sorted(self._base_ids - self.dead), dtype=np.int64)
        return np.concatenate([base, self.delta.ids()])

    def merged(self) -> FaissIndex | BlockIndex:
        """One in-memory index: a copy of the base, minus deletes, plus the delta."""
        self._file.seek(0)
        copy = from_bytes(self._file.read(), nprobe=getattr(self.base, "nprobe", 48))
        copy.remove(sorted(self.dead))
        delta_ids = self.delta.ids()
        if len(delta_ids):
            vecs = self.delta.vectors_for(delta_ids.tolist())  # once, not once per id
            copy.add(delta_ids, np.stack([vecs[int(i)] for i in delta_ids]))
        return copy

    def to_bytes(self) -> bytes:
        return self.merged().to_bytes()

    def __del__(self) -> None:
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()


def _ivf_parts(index: VectorIndex) -> list[IVFIndex]:
    inner = index.base if isinstance(index, LayeredIndex) else index
    parts = inner.parts if isinstance(inner, BlockIndex) else [inner]
    return [p for p in parts if isinstance(p, IVFIndex)]


def prepare_fast(index: VectorIndex, background: bool = True) -> int:
    """Start (or, not ``background``, finish) the fast-scan companion of every IVF index
    in ``index`` that will not be written again (``IVFIndex.prepare_fast``); how many."""
    return sum(p.prepare_fast(background) for p in _ivf_parts(index))


def fast_scan_state(index: VectorIndex) -> Literal["off", "building", "ready"]:
    """``off``: no part of ``index`` gets a fast-scan companion; ``building``: one is on
    its way; ``ready``: every one wanted is built."""
    wanted = [p for p in _ivf_parts(index) if p.fast_wanted]
    if not wanted:
        return "off"
    return "ready" if all(p.fast_ready for p in wanted) else "building"


def _open(path: Path, nprobe: int) -> FaissIndex | BlockIndex:
    """The index in the file at ``path``: one faiss index memory-mapped where faiss can,
    a block index read whole."""
    with open(path, "rb") as f:
        head = f.read(len(blocks.MAGIC))
    if blocks.is_blocks(head):
        try:
            return blocks.read_file(path, nprobe)
        except (ValueError, KeyError, TypeError) as exc:
            raise RuntimeError(f"malformed block index: {exc}") from exc
    return wrap(faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC), nprobe)


def blocks_of(index: VectorIndex) -> tuple[tuple[int, int], ...]:
    """The column blocks ``index`` keeps one index each for; () for one index."""
    inner = index.base if isinstance(index, LayeredIndex) else index
    return tuple(inner.blocks) if isinstance(inner, BlockIndex) else ()


def map_file(path: Path, nprobe: int = 48) -> LayeredIndex:
    """Serve the index file at ``path`` (read-only) with an empty delta."""
    return LayeredIndex(_open(path, nprobe), path)


def from_bytes(data: bytes, nprobe: int = 48) -> FaissIndex | BlockIndex:
    """The index ``to_bytes`` wrote; RuntimeError (as faiss raises) if it is malformed."""
    if blocks.is_blocks(data):
        try:
            return blocks.from_bytes(data, nprobe)
        except (ValueError, KeyError, TypeError) as exc:
            raise RuntimeError(f"malformed block index: {exc}") from exc
    return wrap(faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8)), nprobe)


CRASH_POINTS = ("after_temp_write", "before_fsync", "before_rename", "before_manifest")


def index_file(generation: int, checksum: str) -> str:
    return f"vectors-{generation}-{checksum[:16]}.faiss"


# what a manifest may name: an index file in its own folder, nothing else (a seed's
# manifest is read from shared storage: "../triage/CURRENT" must not be followed)
INDEX_FILE = re.compile(r"vectors-\d+-[0-9a-f]{16}\.faiss")


def save(
    index: VectorIndex, directory: Path, model: str, generation: int, store_id: str
) -> Manifest:
    """Persist ``index`` under ``directory``. The index goes to a new file named by its
    generation and checksum; renaming the manifest over the old one is the commit point,
    so a crash anywhere leaves the old manifest naming the old (still present) file, or
    the new manifest naming the new one. Files no manifest names are removed after."""
    directory.mkdir(parents=True, exist_ok=True)
    data = index.to_bytes()
    checksum = hashlib.sha256(data).hexdigest()
    manifest = Manifest(
        model=model,
        dimension=index.dimension,
        count=index.count,
        generation=generation,
        checksum=checksum,
        file=index_file(generation, checksum),
        store_id=store_id,
        kind=index.kind,
    )
    try:
        files.write_atomic(directory / manifest.file, data)
        files.point("before_manifest", directory / MANIFEST_FILE)
        files.write_atomic(
            directory / MANIFEST_FILE, json.dumps(asdict(manifest), indent=2).encode()
        )
    except OSError as exc:  # disk full, I/O error: the old manifest and file still stand
        raise IndexSaveError(f"vector index not saved: {exc}") from exc
    for stale in directory.iterdir():
        if stale.name != manifest.file and (stale.suffix in (".faiss", ".tmp")):
            stale.unlink(missing_ok=True)
    return manifest


def read(directory: Path, mmap: bool = False, nprobe: int = 48) -> tuple[Manifest, VectorIndex]:
    """The saved index and its manifest, checksum verified; IndexMismatch says why not.
    ``mmap`` maps the file read-only and returns a ``LayeredIndex`` over it. The file is
    hashed on another thread while it is read (each about a second at a million threads;
    hashlib and faiss release the GIL): nothing is returned before the hash matches."""
    try:
        raw_manifest = json.loads((directory / MANIFEST_FILE).read_text())
        manifest = Manifest(**raw_manifest)
    except FileNotFoundError as exc:
        raise IndexMismatch(f"no saved index ({exc.filename})") from exc
    except (ValueError, TypeError) as exc:
        raise IndexMismatch(f"unreadable manifest: {exc}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise IndexMismatch("saved index unusable: format version")
    if not INDEX_FILE.fullmatch(str(manifest.file)):
        raise IndexMismatch(f"saved index unusable: manifest names {manifest.file!r}")
    path = directory / manifest.file
    index: VectorIndex | None = None
    unreadable: Exception | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="index-hash") as one:
        hashing = one.submit(files.sha256_file, path)
        try:
            index = (
                LayeredIndex(_open(path, nprobe), path)
                if mmap
                else from_bytes(path.read_bytes(), nprobe)
            )
        except (RuntimeError, OSError) as exc:
            unreadable = exc
        try:
            checksum = hashing.result()
        except FileNotFoundError as exc:
            raise IndexMismatch(f"no saved index ({exc.filename})") from exc
    if checksum != manifest.checksum:
        raise IndexMismatch("saved index unusable: checksum (corrupt file)")
    if index is None:
        raise IndexMismatch(f"saved index unreadable: {unreadable}") from unreadable
    if index.count != manifest.count or index.dimension != manifest.dimension:
        raise IndexMismatch("saved index does not match its manifest")
    return manifest, index


def load(
    directory: Path,
    model: str,
    dimension: int,
    generation: int,
    store_id: str,
    mmap: bool = False,
    nprobe: int = 48,
) -> tuple[Manifest, VectorIndex]:
    """The saved index if it was built in this embedding space at or before the store's
    ``generation`` (the caller catches it up); IndexMismatch otherwise."""
    manifest, index = read(directory, mmap, nprobe)
    checks = [
        (manifest.model == model, f"built by model {manifest.model!r}, not {model!r}"),
        (manifest.dimension == dimension, "dimension"),
        (manifest.store_id == store_id, "built from another store"),
        (manifest.generation <= generation, "saved after the store's last write"),
    ]
    for ok, why in checks:
        if not ok:
            raise IndexMismatch(f"saved index unusable: {why}")
    return manifest, index
