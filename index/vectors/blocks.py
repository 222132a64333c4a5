"""A vector index stored per column block, for vectors that are zero outside one block.

The encoder pair's document vectors (retrieval/encoders/pair.py) are ``[e, m, 0] / sqrt(2)``
for an English thread and ``[0, 0, m]`` for any other: each is zero outside one of two
column blocks, ``[0, 896)`` or ``[896, 1408)``. One index over all 1,408 columns stores and
scans those zeros: at a million threads an IVF search spends most of its time decoding
them. ``BlockIndex`` keeps one index per block, over that block's columns only, and a
question is scored against each block with its own slice of the query vector. The inner
product is the same (the columns left out are zero in every vector of that block), so
results are identical to one full-width index; an IVF scan of an English-only corpus reads
896 columns instead of 1,408 (measured: 1.76 against 3.08 ms a query at 300,000 threads,
the same recall).

A vector goes to the first block that holds all its non-zero columns (a zero vector to the
first block). Saved as one file: ``MAGIC``, a JSON line (dimension, blocks, part sizes),
then each part's faiss bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from index.vectors import faiss_index
from index.vectors.faiss_index import Keys, VectorIndex, faiss
from index.vectors.search_threads import best, run_all

MAGIC = b"UNSOURCE-BLOCKS-1\n"
FILTERS_KEPT = 16
Block = tuple[int, int]


class BlockIndex(VectorIndex):
    """One faiss index per column block (module doc); same interface as one index."""

    def __init__(
        self, dimension: int, blocks: Sequence[Block], parts: Sequence[faiss_index.FaissIndex]
    ) -> None:
        super().__init__(dimension)
        if len(blocks) != len(parts) or not blocks:
            raise ValueError("one part per block")
        for (start, stop), part in zip(blocks, parts, strict=True):
            if part.dimension != stop - start:
                raise ValueError(f"block {start}:{stop} has a part of dimension {part.dimension}")
        self.blocks = [(int(a), int(b)) for a, b in blocks]
        self.parts = list(parts)
        self.kind = "ivf" if any(p.kind == "ivf" for p in self.parts) else "flat"
        self._members: list[np.ndarray] | None = None  # each part's ids, sorted (lazily)
        # a filter's keys split by part, with each part's faiss selector, by the keys'
        # digest: a popular filter (a tag, a language) costs its split and selectors once
        self._filters: OrderedDict[bytes, list[tuple[np.ndarray, Any]]] = OrderedDict()

    @property
    def nprobe(self) -> int:
        return max((getattr(p, "nprobe", 0) for p in self.parts), default=0) or 48

    @property
    def count(self) -> int:
        return sum(p.count for p in self.parts)

    def block_of(self, vectors_: np.ndarray) -> np.ndarray:
        """For each row, the first block holding all its non-zero columns."""
        out = np.full(len(vectors_), -1, dtype=np.int64)
        nonzero = vectors_ != 0
        total = nonzero.sum(axis=1)
        for b, (start, stop) in reversed(list(enumerate(self.blocks))):
            out[nonzero[:, start:stop].sum(axis=1) == total] = b
        if (out < 0).any():
            raise ValueError("a vector is non-zero in more than one block")
        return out

    def add(self, ids: np.ndarray, vectors_: np.ndarray) -> None:
        if len(ids) == 0:
            return
        keys = faiss_index.as_keys(ids)
        vecs = np.asarray(vectors_, dtype=np.float32).reshape(len(keys), self.dimension)
        where = self.block_of(vecs)
        for b, ((start, stop), part) in enumerate(zip(self.blocks, self.parts, strict=True)):
            rows = np.flatnonzero(where == b)
            if rows.size:
                part.add(keys[rows], np.ascontiguousarray(vecs[rows, start:stop]))
        self._forget()

    def remove(self, ids: Sequence[int]) -> None:
        if len(ids):
            for part in self.parts:
                part.remove(ids)
            self._forget()

    def _forget(self) -> None:
        self._members = None
        self._filters.clear()

    def _filter(self, keys: Keys) -> list[tuple[np.ndarray, Any]]:
        """Per part: the filter's keys it holds, and a selector for them where the part
        searches by selector (``EXACT_WITHIN`` or fewer are scored exactly instead)."""
        wanted = faiss_index.as_keys(keys)
        digest = hashlib.blake2b(wanted.tobytes(), digest_size=16).digest()
        cached = self._filters.get(digest)
        if cached is not None:
            self._filters.move_to_end(digest)
            return cached
        made = [
            (mine, _bitmap_selector(mine) if len(mine) > faiss_index.EXACT_WITHIN else None)
            for mine in self._split(wanted)
        ]
        self._filters[digest] = made
        while len(self._filters) > FILTERS_KEPT:
            self._filters.popitem(last=False)
        return made

    def _split(self, keys: Keys) -> list[np.ndarray]:
        """``keys`` divided by the part that holds each (keys held by none are dropped)."""
        if self._members is None:
            self._members = [np.sort(p.ids()) for p in self.parts]
        wanted = faiss_index.as_keys(keys)
        out = []
        for members in self._members:
            at = np.searchsorted(members, wanted)
            found = at < len(members)
            found[found] = members[at[found]] == wanted[found]
            out.append(wanted[found])
        return out

    def _slices(self, query: np.ndarray) -> list[np.ndarray | None]:
        """The query's slice per block; None where the part is empty. (A slice that is all
        zero is still searched: one index over every column would return that block's
        vectors with a score of 0, and a filtered search must list them.)"""
        q = np.asarray(query, dtype=np.float32).ravel()
        return [
            q[start:stop] if part.count else None
            for (start, stop), part in zip(self.blocks, self.parts, strict=True)
        ]

    def search(
        self, query: np.ndarray, k: int, within: Keys | None = None
    ) -> list[tuple[int, float]]:
        """The parts are searched at once (``run_all``): an English question searches both
        blocks, and two parts of a million vectors each took 6.2 ms at once against 11-12
        ms one after the other (in-process, 2 cores)."""
        if k <= 0 or (within is not None and not len(within)):
            return []
        allowed = None if within is None else self._filter(within)
        jobs: list[Callable[[], list[tuple[int, float]]]] = []
        for b, q in enumerate(self._slices(query)):
            part = self.parts[b]
            if q is None:
                continue
            if allowed is None:
                jobs.append(partial(part.search, q, k))
                continue
            keys, selector = allowed[b]
            if selector is not None:
                jobs.append(partial(part.search_selected, q, k, selector, len(keys)))
            elif len(keys):
                jobs.append(partial(part.search, q, k, keys))
        return best(run_all(jobs, "index-parts"), k)

    def search_selected(self, query: np.ndarray, k: int, selector: Any) -> list[tuple[int, float]]:
        jobs: list[Callable[[], list[tuple[int, float]]]] = [
            partial(self.parts[b].search_selected, q, k, selector)
            for b, q in enumerate(self._slices(query))
            if q is not None
        ]
        return best(run_all(jobs, "index-parts"), k)

    def vectors_for(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        if not len(ids):
            return out
        for keys, (start, stop), part in zip(
            self._split(ids), self.blocks, self.parts, strict=True
        ):
            if not len(keys):
                continue
            for key, vec in part.vectors_for(keys.tolist()).items():
                full = np.zeros(self.dimension, dtype=np.float32)
                full[start:stop] = vec
                out[key] = full
        return out

    def ids(self) -> np.ndarray:
        parts = [p.ids() for p in self.parts]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def to_bytes(self) -> bytes:
        data = [p.to_bytes() for p in self.parts]
        header = {
            "dimension": self.dimension,
            "blocks": self.blocks,
            "sizes": [len(d) for d in data],
        }
        return MAGIC + json.dumps(header).encode() + b"\n" + b"".join(data)


def _bitmap_selector(keys: np.ndarray) -> Any:
    """A faiss selector for ``keys`` (non-negative) as a bitmap over 0..max(keys): one bit
    test per id an IVF scan meets, where a hash set costs a lookup (a filter matching 1
    thread in 20 at a million: 24 ms of its search). The bitmap lives as long as the
    selector (kept on it)."""
    mask = np.zeros(int(keys.max()) + 1, dtype=bool)
    mask[keys] = True
    bits = np.packbits(mask, bitorder="little")
    selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
    selector.bits_array = bits  # faiss reads the array; keep it alive with the selector
    return selector


def is_blocks(data: bytes | memoryview) -> bool:
    return bytes(data[: len(MAGIC)]) == MAGIC


def from_bytes(data: bytes, nprobe: int = 48) -> BlockIndex:
    """A ``BlockIndex`` from ``to_bytes`` output; ValueError if it is not one."""
    if not is_blocks(data):
        raise ValueError("not a block index")
    end = data.index(b"\n", len(MAGIC))
    header = json.loads(data[len(MAGIC) : end])
    parts: list[faiss_index.FaissIndex] = []
    at = end + 1
    view = memoryview(data)  # each part read in place, not copied out first
    for size in header["sizes"]:
        if at + size > len(data):
            raise ValueError("block index: missing bytes")
        parts.append(faiss_index.from_bytes(view[at : at + size], nprobe))
        at += size
    if at != len(data):
        raise ValueError("block index: trailing or missing bytes")
    return BlockIndex(int(header["dimension"]), [tuple(b) for b in header["blocks"]], parts)


def read_file(path: Path, nprobe: int = 48) -> BlockIndex:
    """A ``BlockIndex`` saved at ``path``, each part read by faiss straight from the file
    (no copy of the whole file in memory first: at a million threads that was 4 s of a
    replica's start); ValueError if the file is not one."""
    with open(path, "rb") as f:
        if not is_blocks(f.read(len(MAGIC))):
            raise ValueError("not a block index")
        header = json.loads(f.readline())
        at = f.tell()
        parts: list[faiss_index.FaissIndex] = []
        for size in header["sizes"]:
            f.seek(at)
            raw = faiss.read_index(faiss.PyCallbackIOReader(f.read))
            if f.tell() != at + size:
                raise ValueError("block index: a part is not the size its header says")
            parts.append(faiss_index.wrap(raw, nprobe))
            at += size
        if f.read(1):
            raise ValueError("block index: trailing bytes")
    return BlockIndex(int(header["dimension"]), [tuple(b) for b in header["blocks"]], parts)


def new_block_index(
    kind: str,
    dimension: int,
    blocks: Sequence[Block],
    sample: np.ndarray | None,
    count: int,
    nprobe: int,
) -> BlockIndex:
    """An empty index per block, each of ``kind`` (IVF trained on the sample rows that
    belong to its block, sized for its share of ``count``; flat where too few rows)."""
    template = BlockIndex(dimension, blocks, [faiss_index.FlatIndex(b - a) for a, b in blocks])
    if kind != "ivf" or sample is None or not len(sample):
        return template
    where = template.block_of(sample)
    parts: list[faiss_index.FaissIndex] = []
    for b, (start, stop) in enumerate(blocks):
        rows = sample[where == b, start:stop]
        share = max(1, round(count * len(rows) / len(sample)))
        made = faiss_index.new_index("ivf", stop - start, rows, share, nprobe)
        assert isinstance(made, faiss_index.FaissIndex)
        parts.append(made)
    return BlockIndex(dimension, blocks, parts)
