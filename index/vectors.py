"""FAISS vector index keyed by the store's integer thread keys, saved atomically.

One backend per class behind a small base (``add``, ``remove``, ``search``, ``save``,
``load``), after txtai's ann/ layout, except that ``save`` never writes the live path:
it writes a temp file, fsyncs it, renames it over the old one and fsyncs the directory,
then does the same for a JSON manifest that names the model, dimension, count, the
store generation the index reflects and the SHA-256 of the index file.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np

from index.errors import IndexMismatch

faiss: Any = _faiss  # faiss's SWIG signatures are looser than its stubs

FORMAT_VERSION = 1
INDEX_FILE = "vectors.faiss"
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


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save(index: VectorIndex, directory: Path, model: str, generation: int) -> Manifest:
    """Persist ``index`` and its manifest atomically under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    data = index.to_bytes()
    manifest = Manifest(
        model=model,
        dimension=index.dimension,
        count=index.count,
        generation=generation,
        checksum=hashlib.sha256(data).hexdigest(),
    )
    _write_atomic(directory / INDEX_FILE, data)
    _write_atomic(directory / MANIFEST_FILE, json.dumps(asdict(manifest), indent=2).encode())
    return manifest


def load(directory: Path, model: str, dimension: int, generation: int, count: int) -> FlatIndex:
    """Load the saved index, or raise IndexMismatch saying why it can't be used."""
    try:
        raw_manifest = json.loads((directory / MANIFEST_FILE).read_text())
        manifest = Manifest(**raw_manifest)
        data = (directory / INDEX_FILE).read_bytes()
    except FileNotFoundError as exc:
        raise IndexMismatch(f"no saved index ({exc.filename})") from exc
    except (ValueError, TypeError) as exc:
        raise IndexMismatch(f"unreadable manifest: {exc}") from exc
    checks = [
        (manifest.format_version == FORMAT_VERSION, "format version"),
        (manifest.model == model, f"built by model {manifest.model!r}, not {model!r}"),
        (manifest.dimension == dimension, "dimension"),
        (hashlib.sha256(data).hexdigest() == manifest.checksum, "checksum (corrupt file)"),
        (manifest.generation == generation, "store has changed since it was saved"),
        (manifest.count == count, "count differs from the store"),
    ]
    for ok, why in checks:
        if not ok:
            raise IndexMismatch(f"saved index unusable: {why}")
    try:
        index = FlatIndex.from_bytes(data)
    except RuntimeError as exc:
        raise IndexMismatch(f"saved index unreadable: {exc}") from exc
    if index.count != count or index.dimension != dimension:
        raise IndexMismatch("saved index does not match its manifest")
    return index
