"""A vector index kept per column block (index/vectors/blocks.py) answers exactly as one index
over every column, for vectors that are zero outside one block."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index.vectors import layered as vectors
from index.vectors.blocks import BlockIndex, new_block_index

BLOCKS = ((0, 6), (6, 10))


def _vectors(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Half the rows live in the first block, half in the second (the encoder pair's
    English and other-language threads), unit length."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 10)).astype(np.float32)
    x[: n // 2, 6:] = 0
    x[n // 2 :, :6] = 0
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.arange(1, n + 1, dtype=np.int64), x


def _pair(kind: str, n: int = 400) -> tuple[vectors.VectorIndex, vectors.FlatIndex, np.ndarray]:
    ids, x = _vectors(n)
    split = new_block_index(kind, 10, BLOCKS, x if kind == "ivf" else None, n, nprobe=64)
    split.add(ids, x)
    flat = vectors.FlatIndex(10)
    flat.add(ids, x)
    return split, flat, x


def _same(a: list[tuple[int, float]], b: list[tuple[int, float]], atol: float = 1e-5) -> None:
    """The same hits with the same scores (hits that tie may come in either order)."""
    got, want = dict(a), dict(b)
    assert got.keys() == want.keys()
    assert np.allclose([got[i] for i in want], list(want.values()), atol=atol)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_searches_match_one_index_over_every_column(kind: str) -> None:
    split, flat, x = _pair(kind)
    assert isinstance(split, BlockIndex) and split.count == 400
    rng = np.random.default_rng(1)
    queries = [x[3], x[300], rng.standard_normal(10).astype(np.float32)]
    for q in queries:
        want = flat.search(q, 10)
        if kind == "flat":
            _same(split.search(q, 10), want)
        else:  # approximate: the same best hit, most of the ten
            got = split.search(q, 10)
            assert got[0][0] == want[0][0]
            assert len({i for i, _ in got} & {i for i, _ in want}) >= 8
    within = [5, 7, 250, 399, 1000]  # 1000 is in neither block
    atol = 1e-5 if kind == "flat" else 0.01  # IVF stores 8-bit codes
    _same(split.search(x[250], 3, within), flat.search(x[250], 3, within), atol)
    assert split.search(x[0], 3, []) == []


def test_vectors_remove_ids_and_bytes_round_trip(tmp_path: Path) -> None:
    split, flat, x = _pair("flat")
    got = split.vectors_for([1, 399, 12345])
    assert set(got) == {1, 399}
    # a flat index keeps float16 codes: a vector comes back within about 1e-3
    assert np.allclose(got[1], x[0], atol=1e-3) and np.allclose(got[399], x[398], atol=1e-3)
    split.remove([1, 399])
    flat.remove([1, 399])
    assert split.count == 398 and 1 not in split.ids() and 399 not in split.ids()
    _same(split.search(x[0], 5), flat.search(x[0], 5))
    again = vectors.from_bytes(split.to_bytes())
    assert isinstance(again, BlockIndex) and again.blocks == list(BLOCKS)
    _same(again.search(x[200], 5), flat.search(x[200], 5))
    # saved and served as a layered index: deletes and later writes on top of it
    manifest = vectors.save(split, tmp_path, "m", 1, "s")
    layered = vectors.map_file(tmp_path / manifest.file)
    assert vectors.blocks_of(layered) == BLOCKS
    dead = list(range(2, 60))
    layered.remove(dead)
    flat.remove(dead)
    extra_ids, extra = np.array([5000, 5001]), _vectors(4, seed=3)[1][[0, 3]]
    layered.add(extra_ids, extra)
    flat.add(extra_ids, extra)
    for q in (x[100], x[300], extra[0], extra[1]):
        _same(layered.search(q, 8), flat.search(q, 8))
    merged = layered.merged()
    assert isinstance(merged, BlockIndex) and merged.count == flat.count


def test_a_vector_spanning_two_blocks_is_refused() -> None:
    split = new_block_index("flat", 10, BLOCKS, None, 0, nprobe=8)
    with pytest.raises(ValueError, match="more than one block"):
        split.add(np.array([1]), np.ones((1, 10), dtype=np.float32))


def test_the_engine_keeps_the_encoder_pairs_blocks_and_ranks_as_exact_search(
    tmp_path: Path,
) -> None:
    """Served end to end: the hashing pair's English and Portuguese threads go to their
    blocks; the best threads are those exact search over the stored vectors finds; the
    layout survives a restart, and an index saved in one piece is rebuilt in blocks."""
    from index.models import Thread
    from service.config import Settings
    from service.runtime import build_engine

    settings = Settings(
        data_dir=tmp_path, model="hash:64+hash:32", index_kind="ivf", _env_file=None
    )
    words = ["router", "firmware", "battery", "invoice", "camera", "screen", "update", "reset"]
    threads = [
        Thread(id=f"en{i}", title=f"How do I {words[i % 8]} the {words[(i * 3) % 8]} {i}")
        for i in range(150)
    ] + [
        Thread(id=f"pt{i}", title=f"Como faço para {words[i % 8]} o {words[(i * 5) % 8]} {i}")
        for i in range(150)
    ]
    question = "How do I reset the router firmware?"
    engine = build_engine(settings, with_triage=False)
    try:
        engine.upsert(threads)
        engine.corpus.rebuild()
        blocks = ((0, 96), (96, 128))  # [english 64 | multilingual 32] and [multilingual 32]
        assert vectors.blocks_of(engine.corpus.index) == blocks
        qvec = engine.searcher.query_form(engine.encoder.encode([question])[0])  # type: ignore[misc]
        exact = vectors.FlatIndex(engine.corpus.index.dimension)
        for pks, _, vecs in engine.store.iter_embeddings():
            exact.add(pks, np.stack(vecs))
        want = [pk for pk, _ in exact.search(qvec, 3)]
        assert [pk for pk, _ in engine.corpus.index.search(qvec, 3)] == want
    finally:
        engine.close()
    again = build_engine(settings, with_triage=False)
    try:
        assert again.corpus.rebuilt_because is None
        assert vectors.blocks_of(again.corpus.index) == blocks
        assert [pk for pk, _ in again.corpus.index.search(qvec, 3)] == want
        keys, rows = exact_contents(again)
        one_piece = vectors.new_index("ivf", again.corpus.index.dimension, rows, len(rows))
        one_piece.add(keys, rows)
        vectors.save(one_piece, settings.index_dir, again.corpus.space, again.store.generation(),
                     again.store.store_id())  # fmt: skip
    finally:
        again.close(save=False)
    third = build_engine(settings, with_triage=False)
    try:
        assert third.corpus.rebuilt_because == "saved index is split into other column blocks"
        assert vectors.blocks_of(third.corpus.index) == blocks
    finally:
        third.close(save=False)


def exact_contents(engine: object) -> tuple[np.ndarray, np.ndarray]:
    store = engine.store  # type: ignore[attr-defined]
    keys, rows = [], []
    for pks, _, vecs in store.iter_embeddings():
        keys.append(pks)
        rows.append(np.stack(vecs))
    return np.concatenate(keys), np.concatenate(rows)


def test_a_malformed_block_file_is_refused_like_a_malformed_faiss_file() -> None:
    split, _, _ = _pair("flat", n=20)
    data = split.to_bytes()
    for broken in (data[:-7], data[:30], blocks_magic() + b"{}\n"):
        with pytest.raises(RuntimeError):  # as faiss refuses a malformed file
            vectors.from_bytes(broken)


def blocks_magic() -> bytes:
    from index.vectors.blocks import MAGIC

    return MAGIC


def test_a_filter_is_split_once_and_forgotten_when_the_index_changes() -> None:
    split, flat, x = _pair("ivf", n=6000)
    assert isinstance(split, BlockIndex)
    within = np.arange(1, 6001, 2)  # 3,000 keys: over EXACT_WITHIN, searched by selector
    first = split.search(x[10], 5, within)
    assert len(split._filters) == 1
    assert split.search(x[10], 5, within.copy()) == first  # same keys: the kept selector
    assert len(split._filters) == 1
    _same(first, flat.search(x[10], 5, within), atol=0.01)
    split.remove([int(first[0][0])])
    assert split._filters == {}
    assert int(first[0][0]) not in {i for i, _ in split.search(x[10], 5, within)}


def test_a_saved_block_file_is_read_part_by_part_and_checked(tmp_path: Path) -> None:
    split, _, x = _pair("ivf", n=2000)
    manifest = vectors.save(split, tmp_path, "m", 1, "s")
    path = tmp_path / manifest.file
    _, again = vectors.read(tmp_path, mmap=True)
    assert vectors.blocks_of(again) == BLOCKS and again.count == 2000
    assert again.search(x[7], 3) == split.search(x[7], 3)
    data = path.read_bytes()
    for broken in (data[:-5], data + b"x"):
        path.write_bytes(broken)
        with pytest.raises(RuntimeError):
            vectors.map_file(path)


def test_questions_searched_from_many_threads_at_once_get_their_own_answers() -> None:
    """Each question's parts are searched at once on a shared pool: many questions at once
    must each get exactly what a search alone gives."""
    from concurrent.futures import ThreadPoolExecutor

    split, _, x = _pair("flat")
    rng = np.random.default_rng(2)
    queries = [x[i] for i in rng.integers(0, 400, 64)]
    alone = [split.search(q, 5) for q in queries]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda q: split.search(q, 5), queries))
    for want, got in zip(alone, together, strict=True):
        _same(got, want)
