"""Which vector index the corpus keeps, and how (``IndexLayout``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index.vectors import layered as vectors
from index.vectors.blocks import new_block_index


@dataclass(frozen=True)
class IndexLayout:
    """Which vector index to keep and how: ``kind`` flat, ivf, or auto (IVF from
    ``ivf_threshold`` threads up, back to flat below half of it); ``mmap`` serves the
    saved file memory-mapped with writes in an in-memory delta."""

    kind: str = "auto"
    ivf_threshold: int = 50_000
    nprobe: int = 48
    mmap: bool = True
    compact_after: float = 0.05  # fraction of the mapped base
    # column blocks the vectors are zero outside of, one index each (index/vectors/blocks.py);
    # () keeps one index over every column
    blocks: tuple[tuple[int, int], ...] = ()

    def kind_for(self, count: int, current: str) -> str:
        if self.kind != "auto":
            return self.kind
        if count >= self.ivf_threshold:
            return "ivf"
        if count < self.ivf_threshold // 2:
            return "flat"
        return current if current in ("flat", "ivf") else "flat"

    def new_index(
        self, dimension: int, vectors_: np.ndarray, count: int, current: str
    ) -> vectors.VectorIndex:
        kind = self.kind_for(count, current)
        if kind != "ivf":
            if self.blocks:
                return new_block_index("flat", dimension, self.blocks, None, count, self.nprobe)
            return vectors.FlatIndex(dimension)
        sample = vectors_
        nlist = vectors.IVFIndex.nlist_for(count)
        if len(sample) > 64 * nlist:  # k-means needs tens of points per cell, not all
            pick = np.random.default_rng(0).choice(len(sample), 64 * nlist, replace=False)
            sample = sample[np.sort(pick)]
        if self.blocks:
            return new_block_index("ivf", dimension, self.blocks, sample, count, self.nprobe)
        return vectors.new_index("ivf", dimension, sample, count, self.nprobe)
