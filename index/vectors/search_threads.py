"""The threads a vector search runs on: one question's scan on the calling thread alone
(``one_thread``), or split across the cores on named shared pools (``run_all``).
index/vectors/faiss_index.py splits an IVF scan over its lists so, index/vectors/blocks.py
its blocks."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import faiss as _faiss

faiss: Any = _faiss


@contextmanager
def one_thread() -> Iterator[None]:
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


Hits = list[tuple[int, float]]
# one question's search split across cores: faiss releases the GIL while it scans, so the
# pieces run at once (index/vectors/blocks.py searches its parts so; IVFIndex its lists)
SPLIT_WAYS = max(1, min(4, os.cpu_count() or 1))
_pools: dict[str, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def run_all(jobs: Sequence[Callable[[], Hits]], pool: str) -> Hits:
    """Every job's hits, the jobs run at once: the first on the calling thread, the others
    on the named shared pool (a job on one pool may wait on another pool's jobs, never on
    its own pool's, so no pool can fill with jobs waiting on jobs queued behind them)."""
    if len(jobs) <= 1:
        return jobs[0]() if jobs else []
    with _pools_lock:
        executor = _pools.get(pool)
        if executor is None:
            executor = _pools[pool] = ThreadPoolExecutor(16, thread_name_prefix=pool)
    others = [executor.submit(job) for job in jobs[1:]]
    hits = jobs[0]()
    for other in others:
        hits += other.result()
    return hits


def best(hits: Hits, k: int) -> Hits:
    return sorted(hits, key=lambda h: -h[1])[:k]
