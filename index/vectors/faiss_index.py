"""FAISS indexes keyed by the store's integer thread keys: exact (``FlatIndex``) and
approximate (``IVFIndex``), behind one small base (``add``, ``remove``, ``search``,
``vectors_for``), after txtai's ann/ layout. index/vectors/blocks.py keeps one of these per column
block; index/vectors/layered.py layers writes over a saved one and saves them atomically.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import partial
from itertools import pairwise
from typing import Any

import faiss as _faiss
import numpy as np

from index.vectors.search_threads import SPLIT_WAYS, best, one_thread, run_all

faiss: Any = _faiss  # faiss's SWIG signatures are looser than its stubs
log = logging.getLogger("unsource.index")


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


def as_keys(values: Keys) -> np.ndarray:
    if isinstance(values, np.ndarray):  # no trip through Python ints for large key sets
        return np.ascontiguousarray(values, dtype=np.int64)
    return np.ascontiguousarray(np.asarray(list(values), dtype=np.int64))


def _hits(scores: np.ndarray, ids: np.ndarray) -> list[tuple[int, float]]:
    return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True) if i >= 0]


class FaissIndex(VectorIndex):
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
        self._index.add_with_ids(vecs, as_keys(ids))

    def _params(self, selector: Any, allowed: int | None = None) -> Any:
        """Search parameters; ``allowed``: how many ids the selector lets through."""
        return faiss.SearchParameters(sel=selector)

    def search(
        self, query: np.ndarray, k: int, within: Keys | None = None
    ) -> list[tuple[int, float]]:
        if within is None:
            return self.search_selected(query, k, None)
        if not len(within):
            return []
        return self.search_selected(query, k, faiss.IDSelectorBatch(as_keys(within)), len(within))

    def search_selected(
        self, query: np.ndarray, k: int, selector: Any, allowed: int | None = None
    ) -> list[tuple[int, float]]:
        """The best ``k`` among the ids a faiss ``selector`` lets through (None: all);
        ``allowed``: how many ids that is, where known."""
        if self.count == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dimension)
        params = self._params(selector, allowed)
        with one_thread():
            scores, ids = self._index.search(q, min(k, self.count), params=params)
        return _hits(scores[0], ids[0])

    def vectors_for(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        keys = as_keys(ids)
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


def _flat_codes(dimension: int) -> Any:
    """A flat index's vectors, as float16 codes (``FLAT_CODES``)."""
    return faiss.IndexScalarQuantizer(dimension, FLAT_CODES, faiss.METRIC_INNER_PRODUCT)


def _is_flat(raw: Any) -> bool:
    """An exhaustive index unsource writes: float16 codes, or float32 (as earlier versions
    saved them; such a store keeps its file until the index is next rebuilt)."""
    if isinstance(raw, faiss.IndexScalarQuantizer):
        return bool(raw.sq.qtype == FLAT_CODES)
    return isinstance(raw, faiss.IndexFlatIP)


class FlatIndex(FaissIndex):
    """Exhaustive search: ``IndexIDMap2`` over every vector as float16 codes (``FLAT_CODES``;
    an index saved with float32 vectors, ``IndexFlatIP``, is read and served as it is).
    A delete compacts the array (O(n) memmove, no re-encoding or rebuild)."""

    kind = "flat"

    def __init__(self, dimension: int, raw: Any = None) -> None:
        super().__init__(
            dimension, raw if raw is not None else faiss.IndexIDMap2(_flat_codes(dimension))
        )

    def remove(self, ids: Sequence[int]) -> None:
        if len(ids):
            self._index.remove_ids(as_keys(ids))

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)


class IVFIndex(FaissIndex):
    """Approximate search for large corpora: an inverted file over ``nlist`` k-means
    cells with 8-bit scalar-quantised vectors (4x smaller than flat), ``nprobe`` cells
    searched per query. A hashtable direct map makes deletes O(1) per id and lets
    vectors be read back (decoded: about 1e-3 from the original)."""

    kind = "ivf"

    def __init__(self, dimension: int, raw: Any, nprobe: int = 48) -> None:
        super().__init__(dimension, raw)
        self.nprobe = nprobe
        self._fast: Any = None  # the fast-scan companion (``prepare_fast``), once built
        self._fast_wanted = False
        self._changes = 0  # writes since construction: a companion built before one is stale

    def prepare_fast(self, background: bool = True) -> bool:
        """Build the fast-scan companion of a read-only index (the saved base a replica
        serves): the same cells and ids, each vector in 4-bit product-quantised codes
        (``d / 4`` bytes against ``d`` for the 8-bit codes) that faiss scans with SIMD
        lookup tables. An unfiltered search then scans those and rescores the best
        ``FAST_REFINE`` times ``k`` (at least ``FAST_REFINE_MIN``) with the 8-bit vectors,
        so every score it returns is the score the 8-bit scan gives (at 1M threads: 3.5
        against 4.6-4.9 ms a question inside a suggest). Built from the stored codes (no
        encoder, nothing saved), on one thread, in the background by default; searches
        use the 8-bit scan until it is ready (1M threads: ~30 s). Only for ``FAST_MIN``
        vectors or more. True if one is (being) built."""
        if self._fast_wanted or self.count < FAST_MIN or self.dimension % FAST_DIMS:
            return self._fast_wanted
        self._fast_wanted = True
        if not background:
            self._build_fast()
            return True
        threading.Thread(target=self._build_fast, name="ivf-fast-scan", daemon=True).start()
        return True

    @property
    def fast_wanted(self) -> bool:
        return self._fast_wanted

    @property
    def fast_ready(self) -> bool:
        return self._fast is not None

    def _build_fast(self) -> None:
        changes, raw, d = self._changes, self._index, self.dimension
        t0 = time.perf_counter()
        try:
            with one_thread():
                pq = faiss.IndexIVFPQ(
                    raw.quantizer, d, raw.nlist, d // FAST_DIMS, 4, raw.metric_type
                )
                pq.by_residual = True
                lists = [c for c in range(raw.nlist) if raw.invlists.list_size(c)]
                step = max(1, self.count // FAST_TRAIN)  # every step-th cell: about FAST_TRAIN
                pq.train(np.concatenate([self._decoded(c)[1] for c in lists[::step]]))
                for c in lists:  # each list's vectors, assigned to it already
                    ids, x = self._decoded(c)
                    cells = np.full(len(ids), c, dtype=np.int64)
                    pq.add_core(
                        len(ids), faiss.swig_ptr(x), faiss.swig_ptr(ids), faiss.swig_ptr(cells)
                    )
                fast = faiss.IndexIVFPQFastScan(pq)  # the codes packed for SIMD scans
        except Exception:  # the 8-bit scan keeps serving
            log.exception("the IVF fast-scan companion could not be built")
            self._fast_wanted = False
            return
        if changes == self._changes:
            self._fast = fast
            log.info(
                "IVF fast-scan companion ready",
                extra={"vectors": int(fast.ntotal), "seconds": round(time.perf_counter() - t0, 1)},
            )

    def _decoded(self, cell: int) -> tuple[np.ndarray, np.ndarray]:
        """The ids in one cell and their vectors as the 8-bit codes store them."""
        inv, raw = self._index.invlists, self._index
        n = inv.list_size(cell)
        ids = faiss.rev_swig_ptr(inv.get_ids(cell), n).copy().astype(np.int64)
        codes = faiss.rev_swig_ptr(inv.get_codes(cell), n * inv.code_size).copy()
        x = np.empty((n, self.dimension), dtype=np.float32)
        raw.sq.decode_c(faiss.swig_ptr(codes), faiss.swig_ptr(x), n)
        if raw.by_residual:
            x += raw.quantizer.reconstruct(cell)
        return ids, x

    def _fast_search(self, fast: Any, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The fast-scan codes' best ``want`` in the question's nearest cells, rescored
        by the 8-bit scan of the same cells letting only those ids through (faiss checks
        the selector before it reads a code): the cells are found once for both scans.
        At 1M threads, 200 questions: 1.97 against 2.33-2.55 ms a search when the best
        were read back (``reconstruct_batch``) and rescored in numpy, the same top 10 in
        the same order."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dimension)
        want = min(self.count, max(FAST_REFINE_MIN, FAST_REFINE * k))
        raw = self._index
        with one_thread():
            cell_scores, cells = raw.quantizer.search(q, self.nprobe)
            params = faiss.SearchParametersIVF(nprobe=self.nprobe)
            found = self._preassigned(fast, q, want, cells, cell_scores, params)[1]
            ids = np.ascontiguousarray(found[0][found[0] >= 0])
            if not len(ids):
                return []
            selector = faiss.IDSelectorBatch(len(ids), faiss.swig_ptr(ids))
            params = faiss.SearchParametersIVF(nprobe=self.nprobe, sel=selector)
            scores, best_ids = self._preassigned(raw, q, k, cells, cell_scores, params)
        return _hits(scores[0], best_ids[0])

    @staticmethod
    def _preassigned(
        index: Any, q: np.ndarray, k: int, cells: np.ndarray, cell_scores: np.ndarray, params: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """faiss's search over cells already chosen (its Python wrapper takes no params)."""
        cells = np.ascontiguousarray(cells, dtype=np.int64)
        cell_scores = np.ascontiguousarray(cell_scores, dtype=np.float32)
        scores = np.empty((1, k), dtype=np.float32)
        ids = np.empty((1, k), dtype=np.int64)
        index.search_preassigned_c(
            1, faiss.swig_ptr(q), k, faiss.swig_ptr(cells), faiss.swig_ptr(cell_scores),
            faiss.swig_ptr(scores), faiss.swig_ptr(ids), False, params,
        )  # fmt: skip
        return scores, ids

    def _written(self) -> None:
        """A write: a companion built or being built from the old codes is dropped."""
        self._changes += 1
        self._fast = None
        self._fast_wanted = False

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._written()
        super().add(ids, vectors)

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
        """A filter that lets 1 id in ``s`` through probes ``s / FILTER_PROBE_SHARE`` times
        as many lists (at least 4 times): the allowed vectors near a question gather in its
        nearest lists. At a million threads, a filter allowing 1 in 20 (a topical tag, and
        50,000 random ids), against exact search over the allowed vectors: recall@10 1.0
        and 0.9993 probing 20 times the lists, the same probing 5 times (17 -> 8.6 ms and
        20.5 -> 12.3 ms p50 in-process). The selector is checked before any distance is
        computed, so the extra lists cost an id lookup each entry."""
        if selector is None:
            return faiss.SearchParametersIVF(nprobe=self.nprobe)
        spread = math.ceil(self.count / allowed) if allowed else 1
        widen = max(4, math.ceil(spread / FILTER_PROBE_SHARE))
        nprobe = min(self._index.nlist, self.nprobe * widen)
        return faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)

    def search_selected(
        self, query: np.ndarray, k: int, selector: Any, allowed: int | None = None
    ) -> list[tuple[int, float]]:
        """As one faiss search, with the lists to probe split across cores when there are
        enough codes to scan (``SPLIT_EACH`` per way): the cells are chosen once, each way
        scans its share of them (``search_preassigned``) and the best ``k`` of all are kept,
        so the result is what one search gives. At a million threads on 2 cores, in-process:
        6.0 against 4.4 ms a question (unfiltered), 23 against 16 ms (a filter allowing 1 in
        20, 960 lists probed), the same hits."""
        fast = self._fast
        if fast is not None and selector is None and 0 < k <= self.count:
            return self._fast_search(fast, query, k)
        params = self._params(selector, allowed)
        nprobe = int(params.nprobe)
        scanned = self.count * nprobe // max(1, self._index.nlist)
        ways = min(SPLIT_WAYS, nprobe, scanned // SPLIT_EACH)
        if ways <= 1 or self.count == 0 or k <= 0:
            return super().search_selected(query, k, selector, allowed)
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dimension)
        with one_thread():
            cell_scores, cells = self._index.quantizer.search(q, nprobe)
        bounds = np.linspace(0, nprobe, ways + 1).astype(int)
        jobs = [
            partial(self._scan, q, min(k, self.count), cells[:, a:b], cell_scores[:, a:b], selector)
            for a, b in pairwise(bounds.tolist())
        ]
        return best(run_all(jobs, "index-lists"), k)

    def _scan(
        self, q: np.ndarray, k: int, cells: np.ndarray, cell_scores: np.ndarray, selector: Any
    ) -> list[tuple[int, float]]:
        """The best ``k`` in the given cells (faiss's search after its cell assignment)."""
        params = faiss.SearchParametersIVF(nprobe=cells.shape[1])
        if selector is not None:
            params.sel = selector
        with one_thread():
            scores, ids = self._preassigned(self._index, q, k, cells, cell_scores, params)
        return _hits(scores[0], ids[0])

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
            self._written()
            arr = as_keys(ids)
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
SPLIT_EACH = 10_000  # codes a way of a split IVF search scans, at least
FILTER_PROBE_SHARE = 4  # a filter allowing 1 id in s probes s / this times the lists
# the fast-scan companion (IVFIndex.prepare_fast): built for this many vectors or more; a
# 4-bit code per FAST_DIMS dimensions, codebooks trained on about FAST_TRAIN stored vectors;
# its scan's best FAST_REFINE * k (at least FAST_REFINE_MIN) are rescored with the 8-bit
# codes. At a million threads (d = 896), against the 8-bit scan for 200 questions: top-10
# the same (overlap 1.0), top-100 overlap 0.988; 4 dimensions a code gave 0.971 / 0.871
FAST_MIN = 100_000
FAST_REFINE = 4
FAST_REFINE_MIN = 400
FAST_TRAIN = 20_000
FAST_DIMS = 2


# a flat index keeps its vectors as float16: one question's scan reads every vector, and at
# half the bytes it reads them about twice as fast (10,000 vectors of 896 dimensions, one
# thread, Intel Xeon: 0.93 against 1.75 ms; 384: 0.34 against 0.69); a score moves by
# about 1e-4 (a unit vector's components are about 0.03, float16 keeps 11 bits of each)
FLAT_CODES = faiss.ScalarQuantizer.QT_fp16


def from_bytes(data: bytes | memoryview, nprobe: int = 48) -> FaissIndex:
    return wrap(faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8)), nprobe)


def wrap(raw: Any, nprobe: int) -> FaissIndex:
    """The index kind a deserialised faiss index is; RuntimeError (as faiss raises for a
    malformed file) for any other faiss type, e.g. a bare ``IndexFlatIP`` without ids."""
    if isinstance(raw, faiss.IndexIVF):
        return IVFIndex(raw.d, raw, nprobe)
    if isinstance(raw, faiss.IndexIDMap2) and _is_flat(faiss.downcast_index(raw.index)):
        return FlatIndex(raw.d, raw)
    raise RuntimeError(f"a {type(raw).__name__}, not an index unsource writes")


def new_index(
    kind: str, dimension: int, sample: np.ndarray | None = None, count: int = 0, nprobe: int = 48
) -> VectorIndex:
    """An empty index of ``kind``; IVF trains its cells on ``sample``."""
    if kind == "ivf" and sample is not None and len(sample) >= 64:
        return IVFIndex.train(dimension, sample, IVFIndex.nlist_for(count or len(sample)), nprobe)
    return FlatIndex(dimension)
