"""IVF for large corpora, chosen by size; the memory-mapped index with its delta."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from index.corpus import Corpus, IndexLayout
from index.vectors import layered as vectors
from retrieval.encoders.base import HashingEncoder
from tests.support import make_thread

DIM = 32


def clustered(n: int, seed: int = 0, centres: int = 40) -> np.ndarray:
    """Unit vectors around a few centres, like embeddings of topical text."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, DIM)).astype(np.float32)
    x = c[rng.integers(0, centres, n)] + 0.35 * rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def recall_at_10(
    approx: vectors.VectorIndex, exact: vectors.VectorIndex, queries: np.ndarray
) -> float:
    found = 0
    for q in queries:
        truth = {i for i, _ in exact.search(q, 10)}
        found += len(truth & {i for i, _ in approx.search(q, 10)})
    return found / (10 * len(queries))


def test_ivf_recall_against_flat_and_deletes_without_rebuild() -> None:
    x = clustered(20_000)
    ids = np.arange(1, len(x) + 1, dtype=np.int64)
    flat = vectors.FlatIndex(DIM)
    flat.add(ids, x)
    ivf = vectors.new_index("ivf", DIM, x[:5000], count=len(x), nprobe=64)
    assert isinstance(ivf, vectors.IVFIndex) and ivf.kind == "ivf"
    ivf.add(ids, x)
    queries = clustered(200, seed=1)
    assert recall_at_10(ivf, flat, queries) >= 0.95
    gone = list(range(1, 2001))
    ivf.remove(gone)
    flat.remove(gone)
    assert ivf.count == flat.count == 18_000
    assert not set(gone) & set(ivf.ids().tolist())
    assert set(ivf.ids().tolist()) == set(flat.ids().tolist())
    assert recall_at_10(ivf, flat, queries) >= 0.95
    ivf.remove([1, 2])  # already gone: no error, nothing changes
    assert ivf.count == 18_000
    # read back (8-bit codes, so close, not equal) and exact scoring inside a small filter
    back = ivf.vectors_for([5000, 1])
    assert list(back) == [5000] and np.allclose(back[5000], x[4999], atol=0.02)
    hits = ivf.search(x[4999], 3, within=[5000, 6000, 7000])
    assert hits[0][0] == 5000 and {h[0] for h in hits} == {5000, 6000, 7000}


def test_ivf_serialises_with_its_ids_and_hashtable() -> None:
    x = clustered(3000)
    ivf = vectors.new_index("ivf", DIM, x, count=len(x))
    ivf.add(np.arange(10, 3010), x)
    copy = vectors.from_bytes(ivf.to_bytes())
    assert isinstance(copy, vectors.IVFIndex) and copy.count == 3000
    copy.remove([10])
    assert copy.count == 2999 and 10 not in set(copy.ids().tolist())


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_mapped_index_with_delta_matches_an_in_memory_index(tmp_path: Path, kind: str) -> None:
    x = clustered(4000)
    ids = np.arange(1, 4001, dtype=np.int64)
    built = vectors.new_index(kind, DIM, x, count=len(x), nprobe=64)
    built.add(ids[:3000], x[:3000])
    manifest = vectors.save(built, tmp_path, "m", generation=1, store_id="s")
    mapped = vectors.read(tmp_path, mmap=True, nprobe=64)[1]
    assert isinstance(mapped, vectors.LayeredIndex) and mapped.kind == kind
    # writes after the load: new rows, an update (remove + add) and deletes from the base
    mapped.add(ids[3000:], x[3000:])
    mapped.remove([5, 6, 3500])
    mapped.add(np.array([5]), x[4000 - 1 : 4000])
    built.add(ids[3000:], x[3000:])
    built.remove([5, 6, 3500])
    built.add(np.array([5]), x[4000 - 1 : 4000])
    assert mapped.count == built.count == 3998
    assert sorted(mapped.ids().tolist()) == sorted(built.ids().tolist())
    queries = clustered(50, seed=2)
    if kind == "flat":
        for q in queries:
            assert [i for i, _ in mapped.search(q, 10)] == [i for i, _ in built.search(q, 10)]
    else:  # the delta is exact where the IVF codes are not: compare both with the truth
        truth = vectors.FlatIndex(DIM)
        truth.add(built.ids(), np.stack(list(built.vectors_for(built.ids().tolist()).values())))
        assert recall_at_10(mapped, truth, queries) >= recall_at_10(built, truth, queries) - 0.02
    assert 6 not in mapped.vectors_for([6]) and np.allclose(
        mapped.vectors_for([5])[5], built.vectors_for([5])[5], atol=0.02
    )
    # another process's save removes the mapped file: merging still works
    (tmp_path / manifest.file).unlink()
    reads: list[int] = []
    delta_read = mapped.delta.vectors_for

    def counted(ids: Sequence[int]) -> dict[int, np.ndarray]:
        reads.append(len(ids))
        return delta_read(ids)

    mapped.delta.vectors_for = counted  # type: ignore[method-assign]
    merged = vectors.from_bytes(mapped.to_bytes())
    assert reads == [1000]  # the delta read once, not once per row (was quadratic)
    assert sorted(merged.ids().tolist()) == sorted(built.ids().tolist())
    if kind == "flat":  # (an IVF copy holds the delta as codes, no longer exact)
        for q in queries[:5]:
            assert [i for i, _ in merged.search(q, 10)] == [i for i, _ in mapped.search(q, 10)]


def _corpus(tmp_path: Path, store, layout: IndexLayout) -> Corpus:  # type: ignore[no-untyped-def]
    return Corpus(store, HashingEncoder(DIM), tmp_path / "index", lambda t: t.title, layout=layout)


def test_corpus_picks_ivf_above_the_threshold_and_back(tmp_path: Path, store) -> None:  # type: ignore[no-untyped-def]
    layout = IndexLayout(ivf_threshold=600, nprobe=32)
    corpus = _corpus(tmp_path, store, layout)
    corpus.open()
    corpus.upsert(
        [make_thread(f"t{i}", f"question number {i} about topic {i % 17}") for i in range(700)]
    )
    assert corpus.index.kind == "flat"  # grows as flat while it runs
    corpus.save()
    again = _corpus(tmp_path, store, layout)
    again.open()
    assert again.rebuilt_because and "700 threads" in again.rebuilt_because
    assert again.index.kind == "ivf" and again.verify(sample=100).ok
    third = _corpus(tmp_path, store, layout)
    third.open()
    assert third.rebuilt_because is None and third.index.kind == "ivf"
    for i in range(450):
        third.delete(f"t{i}")
    third.save()
    fourth = _corpus(tmp_path, store, layout)
    fourth.open()
    assert fourth.index.kind == "flat" and fourth.verify().ok and fourth.index.count == 250


def test_corpus_folds_a_grown_delta_into_a_new_file(tmp_path: Path, store) -> None:  # type: ignore[no-untyped-def]
    layout = IndexLayout(compact_after=0.01)
    corpus = _corpus(tmp_path, store, layout)
    corpus.open()
    corpus.upsert([make_thread("a", "first thread")])
    corpus.save()
    assert isinstance(corpus.index, vectors.LayeredIndex) and corpus.index.delta.count == 0
    assert not corpus.compact()
    corpus.upsert([make_thread(f"n{i}", f"new thread {i}") for i in range(150)])
    assert corpus.index.delta.count == 150
    assert corpus.compact()
    assert isinstance(corpus.index, vectors.LayeredIndex)
    assert corpus.index.delta.count == 0 and corpus.index.base.count == 151
    assert corpus.verify().ok


def test_a_filtered_ivf_search_probes_more_lists_the_more_selective_the_filter() -> None:
    """Above EXACT_WITHIN ids a filtered IVF search goes through the index: 1 id in s
    allowed probes s times the lists, so recall holds without reading vectors back (which
    cost 1.9 s a query for 50,000 ids at 1M threads)."""
    x = clustered(60_000, centres=200)
    ids = np.arange(1, len(x) + 1, dtype=np.int64)
    ivf = vectors.IVFIndex.train(DIM, x[::4], nlist=400, nprobe=8)
    ivf.add(ids, x)
    flat = vectors.FlatIndex(DIM)
    flat.add(ids, x)
    rng = np.random.default_rng(3)
    within = np.sort(rng.choice(ids, 6_000, replace=False))  # 1 in 10, > EXACT_WITHIN
    assert len(within) > vectors.EXACT_WITHIN
    selector = faiss.IDSelectorBatch(within)
    share = vectors.FILTER_PROBE_SHARE
    assert ivf._params(selector, len(within)).nprobe == 8 * max(4, math.ceil(10 / share))
    assert ivf._params(selector, len(ids) // 40).nprobe == 8 * math.ceil(40 / share)
    assert ivf._params(selector, len(ids)).nprobe == 8 * 4  # at least 4x
    assert ivf._params(selector, 1).nprobe == 400  # capped at every list
    found = 0
    for q in clustered(30, seed=9, centres=200):
        truth = {i for i, _ in flat.search(q, 10, within)}
        got = ivf.search(q, 10, within)
        assert all(i in set(within.tolist()) for i, _ in got)
        found += len(truth & {i for i, _ in got})
    assert found / 300 >= 0.95


@pytest.mark.parametrize("filtered", [False, True])
def test_an_ivf_search_split_across_cores_finds_what_one_search_finds(
    monkeypatch: pytest.MonkeyPatch, filtered: bool
) -> None:
    """The lists a question probes are chosen once and scanned in parts at once; the best
    hits of the parts are the best hits of one search over all those lists."""
    from index.vectors import faiss_index

    x = clustered(20_000, centres=100)
    ids = np.arange(1, len(x) + 1, dtype=np.int64)
    ivf = vectors.IVFIndex.train(DIM, x[::4], nlist=200, nprobe=24)
    ivf.add(ids, x)
    within = np.sort(np.random.default_rng(4).choice(ids, 4_000, replace=False))
    selector = faiss.IDSelectorBatch(within) if filtered else None
    allowed = len(within) if filtered else None
    queries = clustered(20, seed=5, centres=100)
    unsplit = faiss_index.FaissIndex.search_selected
    whole = [unsplit(ivf, q, 10, selector, allowed) for q in queries]
    assert ivf.search_selected(queries[0], 10, selector, allowed) == whole[0]  # not split here
    monkeypatch.setattr(faiss_index, "SPLIT_WAYS", 3)
    monkeypatch.setattr(faiss_index, "SPLIT_EACH", 1)
    scans: list[int] = []
    scan = vectors.IVFIndex._scan

    def counted(self: vectors.IVFIndex, *args: Any) -> list[tuple[int, float]]:
        scans.append(args[2].shape[1])  # how many cells this part scans
        return scan(self, *args)

    monkeypatch.setattr(vectors.IVFIndex, "_scan", counted)
    for q, want in zip(queries, whole, strict=True):
        got = ivf.search_selected(q, 10, selector, allowed)
        assert [i for i, _ in got] == [i for i, _ in want]
        assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-6)
        if filtered:
            assert set(i for i, _ in got) <= set(within.tolist())
    probes = int(ivf._params(selector, allowed).nprobe)
    assert scans[:3] == [probes // 3] * 3 and sum(scans) == probes * len(queries)


def _ivf(n: int = 20_000) -> tuple[vectors.IVFIndex, np.ndarray]:
    x = clustered(n, centres=100)
    ivf = vectors.IVFIndex.train(DIM, x[::4], nlist=200, nprobe=24)
    ivf.add(np.arange(1, n + 1, dtype=np.int64), x)
    return ivf, x


def test_a_read_only_ivf_scans_its_fast_codes_and_returns_the_8bit_scores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast-scan companion finds what the 8-bit scan finds, every score it returns is
    the 8-bit vector's, filtered searches keep the 8-bit scan, and a write drops it."""
    from index.vectors import faiss_index

    ivf, _ = _ivf()
    queries = clustered(40, seed=5, centres=100)
    eight_bit = [ivf.search(q, 10) for q in queries]
    within = np.arange(1, 20_001, 7, dtype=np.int64)  # > EXACT_WITHIN: through the index
    filtered = [ivf.search(q, 10, within) for q in queries]
    assert ivf.prepare_fast(background=False) is False  # below FAST_MIN: nothing built
    monkeypatch.setattr(faiss_index, "FAST_MIN", 1_000)
    assert ivf.prepare_fast(background=False) is True and ivf._fast is not None
    fast_calls: list[int] = []
    fast_search = vectors.IVFIndex._fast_search

    def counted(self: vectors.IVFIndex, *args: Any) -> list[tuple[int, float]]:
        fast_calls.append(1)
        return fast_search(self, *args)

    monkeypatch.setattr(vectors.IVFIndex, "_fast_search", counted)
    same = 0
    for q, want, want_filtered in zip(queries, eight_bit, filtered, strict=True):
        got = ivf.search(q, 10)
        same += len({i for i, _ in got} & {i for i, _ in want})
        stored = ivf.vectors_for([i for i, _ in got])
        for i, score in got:
            assert score == pytest.approx(float(stored[i] @ q), abs=1e-5)
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
        assert ivf.search(q, 10, within) == want_filtered  # a selector: the 8-bit scan
    assert len(fast_calls) == len(queries)
    assert same / (10 * len(queries)) >= 0.97
    ivf.add(np.array([99_999], dtype=np.int64), queries[:1])  # a write: the codes are stale
    assert ivf._fast is None and not ivf.fast_wanted
    assert [i for i, _ in ivf.search(queries[0], 1)] == [99_999]
    assert len(fast_calls) == len(queries)


def test_a_mapped_ivf_base_builds_its_fast_scan_in_the_background(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from index.vectors import faiss_index

    monkeypatch.setattr(faiss_index, "FAST_MIN", 1_000)
    ivf, _ = _ivf(5_000)
    vectors.save(ivf, tmp_path, "m", generation=1, store_id="s")
    mapped = vectors.read(tmp_path, mmap=True, nprobe=24)[1]
    assert isinstance(mapped, vectors.LayeredIndex)
    base = mapped.base
    assert isinstance(base, vectors.IVFIndex)
    assert vectors.fast_scan_state(mapped) in ("building", "ready")
    for _ in range(300):  # built on its own thread; the 8-bit scan serves meanwhile
        if base._fast is not None:
            break
        time.sleep(0.05)
    assert base._fast is not None and int(base._fast.ntotal) == 5_000
    assert vectors.fast_scan_state(mapped) == "ready"
    monkeypatch.setattr(faiss_index, "FAST_MIN", 10_000)
    assert vectors.fast_scan_state(vectors.read(tmp_path, mmap=True, nprobe=24)[1]) == "off"
    q = clustered(1, seed=8, centres=100)[0]
    assert {i for i, _ in mapped.search(q, 5)} <= set(range(1, 5_001))


def test_a_fast_scan_that_cannot_be_built_leaves_the_8bit_scan_serving(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from index.vectors import faiss_index

    monkeypatch.setattr(faiss_index, "FAST_MIN", 1_000)
    ivf, _ = _ivf(5_000)
    q = clustered(1, seed=8, centres=100)[0]
    want = ivf.search(q, 10)

    def broken(*_: Any) -> Any:
        raise RuntimeError("no memory for the codes")

    monkeypatch.setattr(faiss_index.faiss, "IndexIVFPQFastScan", broken)
    assert ivf.prepare_fast(background=False) is True
    assert ivf._fast is None and not ivf.fast_wanted  # /readyz: "off", not "building"
    assert vectors.fast_scan_state(ivf) == "off"
    assert "could not be built" in caplog.text
    assert ivf.search(q, 10) == want


def test_flat_keeps_float16_codes_and_still_reads_float32_indexes() -> None:
    """A flat index scans every vector per question: it keeps them as float16 (half the
    bytes to read), scores within 1e-3 of float32 with the same order of clear winners; an
    index saved before (``IndexFlatIP``, float32) is read back and served as it was."""
    x = clustered(2000)
    ids = np.arange(1, len(x) + 1, dtype=np.int64)
    flat = vectors.FlatIndex(DIM)
    flat.add(ids, x)
    legacy_raw = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    legacy_raw.add_with_ids(x, ids)
    legacy = vectors.from_bytes(bytes(faiss.serialize_index(legacy_raw)))
    assert isinstance(legacy, vectors.FlatIndex) and legacy.kind == "flat"
    assert len(flat.to_bytes()) < 0.6 * len(legacy.to_bytes())
    for q in clustered(50, seed=3):
        new, old = flat.search(q, 10), legacy.search(q, 10)
        assert new[0][0] == old[0][0] or abs(old[0][1] - old[1][1]) < 2e-3
        assert np.allclose([s for _, s in new], [s for _, s in old], atol=1e-3)
    again = vectors.from_bytes(flat.to_bytes())
    assert isinstance(again, vectors.FlatIndex) and again.count == len(x)
    legacy.remove([1, 2])
    legacy.add(np.array([1], dtype=np.int64), x[:1])  # a float32 index takes writes as before
    assert legacy.count == len(x) - 1 and legacy.search(x[0], 1)[0][0] == 1
