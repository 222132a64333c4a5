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
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np

from index import files
from index.errors import IndexMismatch, IndexSaveError

faiss: Any = _faiss  # faiss's SWIG signatures are looser than its stubs


@contextmanager
def _one_thread() -> Iterator[None]:
    """One question's search, run on the calling thread alone. Its OpenMP team gains
    little on one query, and on a busy server each search waited for a descheduled team
    member (flat 10k under load: 2.5 ms vs 0.55 ms). OpenMP thread counts are per calling
    thread, so builds and training elsewhere keep every core."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


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

    kind = "abstract"

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
        self, query: np.ndarray, k: int, within: Keys | None = None
    ) -> list[tuple[int, float]]: ...

    @abstractmethod
    def vectors_for(self, ids: Sequence[int]) -> dict[int, np.ndarray]: ...

    @abstractmethod
    def ids(self) -> np.ndarray: ...

    @abstractmethod
    def to_bytes(self) -> bytes: ...


Keys = Sequence[int] | np.ndarray  # thread keys: a list, or an int64 array for large sets


def _ids(values: Keys) -> np.ndarray:
    if isinstance(values, np.ndarray):  # no trip through Python ints for large key sets
        return np.ascontiguousarray(values, dtype=np.int64)
    return np.ascontiguousarray(np.asarray(list(values), dtype=np.int64))


def _hits(scores: np.ndarray, ids: np.ndarray) -> list[tuple[int, float]]:
    return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True) if i >= 0]


class _FaissIndex(VectorIndex):
    """What flat and IVF share: a faiss index that stores its own int64 ids."""

    def __init__(self, dimension: int, raw: Any) -> None:
        super().__init__(dimension)
        self._index = raw

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vecs = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dimension)
        self._index.add_with_ids(vecs, _ids(ids))

    def _params(self, selector: Any, allowed: int | None = None) -> Any:
        """Search parameters; ``allowed``: how many ids the selector lets through."""
        return faiss.SearchParameters(sel=selector)

    def search(
        self, query: np.ndarray, k: int, within: Keys | None = None
    ) -> list[tuple[int, float]]:
        if self.count == 0 or k <= 0 or (within is not None and not len(within)):
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dimension)
        selector = None if within is None else faiss.IDSelectorBatch(_ids(within))
        params = self._params(selector, None if within is None else len(within))
        with _one_thread():
            scores, ids = self._index.search(q, min(k, self.count), params=params)
        return _hits(scores[0], ids[0])

    def vectors_for(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        keys = _ids(ids)
        try:  # all present, the usual case: one call
            return dict(zip(keys.tolist(), self._index.reconstruct_batch(keys), strict=True))
        except RuntimeError:  # some id not in the index: one by one, skipping those
            pass
        out: dict[int, np.ndarray] = {}
        for i in ids:
            try:
                out[int(i)] = self._index.reconstruct(int(i))
            except RuntimeError:  # id not in the index
                continue
        return out

    def to_bytes(self) -> bytes:
        return bytes(faiss.serialize_index(self._index))


class FlatIndex(_FaissIndex):
    """Exact search: ``IndexIDMap2`` over ``IndexFlatIP``. A delete compacts the array
    (O(n) memmove, no re-encoding or rebuild)."""

    kind = "flat"

    def __init__(self, dimension: int, raw: Any = None) -> None:
        super().__init__(
            dimension, raw if raw is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        )

    def remove(self, ids: Sequence[int]) -> None:
        if len(ids):
            self._index.remove_ids(_ids(ids))

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)


class IVFIndex(_FaissIndex):
    """Approximate search for large corpora: an inverted file over ``nlist`` k-means
    cells with 8-bit scalar-quantised vectors (4x smaller than flat), ``nprobe`` cells
    searched per query. A hashtable direct map makes deletes O(1) per id and lets
    vectors be read back (decoded: about 1e-3 from the original)."""

    kind = "ivf"

    def __init__(self, dimension: int, raw: Any, nprobe: int = 48) -> None:
        super().__init__(dimension, raw)
        self.nprobe = nprobe

    @staticmethod
    def nlist_for(count: int) -> int:
        """About 2 sqrt(n) cells (1M threads: 2,000 cells of ~500)."""
        return int(min(65536, max(16, 2 * np.sqrt(max(count, 1)))))

    @classmethod
    def train(cls, dimension: int, sample: np.ndarray, nlist: int, nprobe: int = 48) -> IVFIndex:
        nlist = max(1, min(nlist, len(sample) // 8))
        quantizer = faiss.IndexFlatIP(dimension)
        raw = faiss.IndexIVFScalarQuantizer(
            quantizer, dimension, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        raw.cp.min_points_per_centroid = 1  # small samples train without faiss warnings
        raw.train(np.ascontiguousarray(sample, dtype=np.float32))
        raw.set_direct_map_type(faiss.DirectMap.Hashtable)
        quantizer.this.disown()  # the IVF index owns its quantizer from here on
        raw.own_fields = True
        return cls(dimension, raw, nprobe)

    def _params(self, selector: Any, allowed: int | None = None) -> Any:
        """A filter that lets 1 id in ``s`` through probes ``s`` times as many lists (at least
        4 times), so about as many allowed vectors are compared as an unfiltered search
        compares: the same recall, whatever the filter's size. The selector is checked
        before any distance is computed, so the extra lists cost an id lookup each entry."""
        if selector is None:
            return faiss.SearchParametersIVF(nprobe=self.nprobe)
        spread = math.ceil(self.count / allowed) if allowed else 1
        nprobe = min(self._index.nlist, self.nprobe * max(4, spread))
        return faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)

    def search(
        self, query: np.ndarray, k: int, within: Keys | None = None
    ) -> list[tuple[int, float]]:
        if within is not None and 0 < len(within) <= EXACT_WITHIN:
            # a small filtered set: score it exactly rather than hope its cells are probed
            vecs = self.vectors_for([int(i) for i in within])
            if not vecs or k <= 0:
                return []
            keys = np.fromiter(vecs, dtype=np.int64, count=len(vecs))
            scores = np.stack(list(vecs.values())) @ np.asarray(query, dtype=np.float32).ravel()
            top = np.argsort(-scores, kind="stable")[:k]
            return _hits(scores[top], keys[top])
        return super().search(query, k, within)

    def remove(self, ids: Sequence[int]) -> None:
        if len(ids):
            arr = _ids(ids)
            self._index.remove_ids(faiss.IDSelectorArray(len(arr), faiss.swig_ptr(arr)))

    def ids(self) -> np.ndarray:
        inv = self._index.invlists
        parts = [
            faiss.rev_swig_ptr(inv.get_ids(c), inv.list_size(c)).copy()
            for c in range(inv.nlist)
            if inv.list_size(c)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


# filtered IVF searches over at most this many ids are scored exactly (their vectors read
# back: 2,000 x 1,408 floats is 11 MB; 50,000 was 280 MB a query and 1.9 s at 1M threads)
EXACT_WITHIN = 2_000


class LayeredIndex(VectorIndex):
    """A read-only base (memory-mapped from the saved file, so loading costs no copy and
    replicas share the page cache) plus an in-memory flat delta for later writes and a
    set of base ids deleted since. ``to_bytes`` merges them into one index."""

    def __init__(self, base: _FaissIndex, path: Path) -> None:
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
            keys = _ids(within)
            if self.dead:
                keys = keys[~np.isin(keys, _ids(sorted(self.dead)))]
            return self.base.search(q, k, keys)
        if not self.dead:
            return self.base.search(q, k)
        if len(self.dead) * 4 < k:  # few deletes: over-fetch and drop them
            hits = self.base.search(q, k + len(self.dead))
            return [h for h in hits if h[0] not in self.dead][:k]
        if self._alive_sel is None:
            self._dead_arr = _ids(sorted(self.dead))
            self._dead_batch = faiss.IDSelectorBatch(self._dead_arr)
            self._alive_sel = faiss.IDSelectorNot(self._dead_batch)
        raw = self.base._index
        q2 = np.ascontiguousarray(q, dtype=np.float32).reshape(1, self.dimension)
        with _one_thread():
            scores, ids = raw.search(
                q2, min(k, raw.ntotal), params=self.base._params(self._alive_sel)
            )
        return _hits(scores[0], ids[0])

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

    def merged(self) -> _FaissIndex:
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


def map_file(path: Path, nprobe: int = 48) -> LayeredIndex:
    """Serve the index file at ``path`` memory-mapped (read-only) with an empty delta."""
    return LayeredIndex(_wrap(faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC), nprobe), path)


def from_bytes(data: bytes, nprobe: int = 48) -> _FaissIndex:
    return _wrap(faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8)), nprobe)


def _wrap(raw: Any, nprobe: int) -> _FaissIndex:
    if isinstance(raw, faiss.IndexIVF):
        return IVFIndex(raw.d, raw, nprobe)
    return FlatIndex(raw.d, raw)


def new_index(
    kind: str, dimension: int, sample: np.ndarray | None = None, count: int = 0, nprobe: int = 48
) -> VectorIndex:
    """An empty index of ``kind``; IVF trains its cells on ``sample``."""
    if kind == "ivf" and sample is not None and len(sample) >= 64:
        return IVFIndex.train(dimension, sample, IVFIndex.nlist_for(count or len(sample)), nprobe)
    return FlatIndex(dimension)


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
        kind=index.kind,
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


def read(directory: Path, mmap: bool = False, nprobe: int = 48) -> tuple[Manifest, VectorIndex]:
    """The saved index and its manifest, checksum verified; IndexMismatch says why not.
    ``mmap`` maps the file read-only and returns a ``LayeredIndex`` over it."""
    try:
        raw_manifest = json.loads((directory / MANIFEST_FILE).read_text())
        manifest = Manifest(**raw_manifest)
        path = directory / manifest.file
        checksum = files.sha256_file(path)
    except FileNotFoundError as exc:
        raise IndexMismatch(f"no saved index ({exc.filename})") from exc
    except (ValueError, TypeError) as exc:
        raise IndexMismatch(f"unreadable manifest: {exc}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise IndexMismatch("saved index unusable: format version")
    if checksum != manifest.checksum:
        raise IndexMismatch("saved index unusable: checksum (corrupt file)")
    index: VectorIndex
    try:
        if mmap:
            index = LayeredIndex(
                _wrap(faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC), nprobe), path
            )
        else:
            index = from_bytes(path.read_bytes(), nprobe)
    except RuntimeError as exc:
        raise IndexMismatch(f"saved index unreadable: {exc}") from exc
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
