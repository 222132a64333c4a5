"""FAISS vector index keyed by the store's integer thread keys, saved atomically.

One backend per class behind a small base (``add``, ``remove``, ``search``, ``save``,
``load``), after txtai's ann/ layout, except that ``save`` never writes a live path: it
writes the index to a new file (temp, fsync, rename, fsync dir), then commits by
replacing a JSON manifest the same way. The manifest names that file, the model,
dimension, count, the store generation the index reflects and the file's SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np

from index import files
from index.errors import IndexMismatch, IndexSaveError

faiss: Any = _faiss  # faiss's SWIG signatures are looser than its stubs

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


class VectorIndex(ABC):
    """Inner-product search over L2-normalised vectors, keyed by int64 ids."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension

    @property
    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    @abstractmethod
    def remove(self, ids: Sequence[int]) -> None: ...

    @abstractmethod
    def search(
        self, query: np.ndarray, k: int, within: Sequence[int] | None = None
    ) -> list[tuple[int, float]]: ...

    @abstractmethod
    def vectors_for(self, ids: Sequence[int]) -> dict[int, np.ndarray]: ...

    @abstractmethod
    def ids(self) -> np.ndarray: ...

    @abstractmethod
    def to_bytes(self) -> bytes: ...


class FlatIndex(VectorIndex):
    """Exact search: ``IndexIDMap2`` over ``IndexFlatIP``."""

    kind = "flat"

    def __init__(self, dimension: int, raw: faiss.Index | None = None) -> None:
        super().__init__(dimension)
        self._index = raw if raw is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vecs = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dimension)
        self._index.add_with_ids(vecs, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: Sequence[int]) -> None:
        if len(ids):
            self._index.remove_ids(np.asarray(list(ids), dtype=np.int64))

    def search(
        self, query: np.ndarray, k: int, within: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        if self.count == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dimension)
        params = None
        if within is not None:
            if not within:
                return []
            selector = faiss.IDSelectorBatch(np.asarray(list(within), dtype=np.int64))
            params = faiss.SearchParameters(sel=selector)
        scores, ids = self._index.search(q, min(k, self.count), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def vectors_for(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        for i in ids:
            try:
                out[int(i)] = self._index.reconstruct(int(i))
            except RuntimeError:  # id not in the index
                continue
        return out

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def to_bytes(self) -> bytes:
        return bytes(faiss.serialize_index(self._index))

    @classmethod
    def from_bytes(cls, data: bytes) -> FlatIndex:
        raw = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        return cls(raw.d, raw)


CRASH_POINTS = ("after_temp_write", "before_fsync", "before_rename", "before_manifest")


def index_file(generation: int, checksum: str) -> str:
    return f"vectors-{generation}-{checksum[:16]}.faiss"


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
    )
    try:
        files.write_atomic(directory / manifest.file, data)
        files.point("before_manifest", directory / MANIFEST_FILE)
        files.write_atomic(
            directory / MANIFEST_FILE, json.dumps(asdict(manifest), indent=2).encode()
        )
    except OSError as exc:  # disk full, I/O error: the old manifest and file still stand
        (directory / (manifest.file + ".tmp")).unlink(missing_ok=True)
        raise IndexSaveError(f"vector index not saved: {exc}") from exc
    for stale in directory.iterdir():
        if stale.name != manifest.file and (stale.suffix in (".faiss", ".tmp")):
            stale.unlink(missing_ok=True)
    return manifest


def read(directory: Path) -> tuple[Manifest, FlatIndex]:
    """The saved index and its manifest, checksum verified; IndexMismatch says why not."""
    try:
        raw_manifest = json.loads((directory / MANIFEST_FILE).read_text())
        manifest = Manifest(**raw_manifest)
        data = (directory / manifest.file).read_bytes()
    except FileNotFoundError as exc:
        raise IndexMismatch(f"no saved index ({exc.filename})") from exc
    except (ValueError, TypeError) as exc:
        raise IndexMismatch(f"unreadable manifest: {exc}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise IndexMismatch("saved index unusable: format version")
    if hashlib.sha256(data).hexdigest() != manifest.checksum:
        raise IndexMismatch("saved index unusable: checksum (corrupt file)")
    try:
        index = FlatIndex.from_bytes(data)
    except RuntimeError as exc:
        raise IndexMismatch(f"saved index unreadable: {exc}") from exc
    if index.count != manifest.count or index.dimension != manifest.dimension:
        raise IndexMismatch("saved index does not match its manifest")
    return manifest, index


def load(
    directory: Path, model: str, dimension: int, generation: int, store_id: str
) -> tuple[Manifest, FlatIndex]:
    """The saved index if it was built in this embedding space at or before the store's
    ``generation`` (the caller catches it up); IndexMismatch otherwise."""
    manifest, index = read(directory)
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
