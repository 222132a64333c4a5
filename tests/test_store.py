from pathlib import Path

import numpy as np

from index.store import Row, SQLiteStore, fts_query
from tests.conftest import SAMPLE, make_thread


def _rows(threads, dim=4):
    return [Row(t, f"h-{t.id}", "m", np.ones(dim, dtype=np.float32)) for t in threads]


def test_upsert_get_roundtrip_keeps_fields(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    t = make_thread("a-1", "Title", "Body", "Answer", tags=["X", "y"], language="en",
                    answer_votes=5, accepted=True, url="https://f.example/t/1")  # fmt: skip
    pks = store.upsert(_rows([t]))
    got = store.get("a-1")
    assert got is not None and got.pk == pks["a-1"]
    assert got.thread == t
    assert got.thread.tags == ["x", "y"]


def test_pk_is_stable_on_update_and_never_reused(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    first = store.upsert(_rows(SAMPLE[:2]))
    again = store.upsert(_rows([make_thread("t1", "New title")]))
    assert again["t1"] == first["t1"]
    store.delete("t2")
    new = store.upsert(_rows([make_thread("t9", "Another")]))
    assert new["t9"] not in first.values()


def test_generation_counts_committed_writes(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    g0 = store.generation()
    store.upsert(_rows(SAMPLE))
    assert store.generation() == g0 + 1
    assert store.delete("missing") is None
    assert store.generation() == g0 + 1
    store.delete("t1")
    assert store.generation() == g0 + 2


def test_fts_follows_updates_and_deletes(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    pks = store.upsert(_rows(SAMPLE))
    assert [pk for pk, _ in store.keyword_search("microSD", 5)] == [pks["t3"]]
    store.upsert(_rows([make_thread("t3", "Camera storage options")]))
    assert store.keyword_search("microSD", 5) == []
    assert [pk for pk, _ in store.keyword_search("storage", 5)] == [pks["t3"]]
    store.delete("t3")
    assert store.keyword_search("storage", 5) == []


def test_fts_is_accent_and_case_insensitive_and_safe(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    pks = store.upsert(_rows(SAMPLE))
    assert [pk for pk, _ in store.keyword_search("FABRICA", 5)] == [pks["t4"]]
    # FTS5 syntax in user text must not break the query
    assert store.keyword_search('"unbalanced AND (OR NEAR', 5) == []
    assert fts_query("the and of") is None


def test_keyword_search_within_restricts(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    pks = store.upsert(_rows(SAMPLE))
    assert store.keyword_search("hub", 5, within=[pks["t4"]]) == [
        (pks["t4"], store.keyword_search("hub", 5, within=[pks["t4"]])[0][1])
    ]
    assert store.keyword_search("hub", 5, within=[]) == []


def test_filter_by_language_and_tags(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    pks = store.upsert(_rows(SAMPLE))
    assert set(store.filter_pks(None, "pt")) == {pks["t4"]}
    assert set(store.filter_pks(["HUB"], None)) == {pks["t1"], pks["t4"]}
    assert set(store.filter_pks(["hub"], "en")) == {pks["t1"]}


def test_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    bad = Row(make_thread("z", "z"), "h", "m", np.ones(4, dtype=np.float32))
    object.__setattr__(bad, "content_hash", None)  # violates NOT NULL inside the transaction
    good = _rows([make_thread("ok", "fine")])
    try:
        store.upsert([*good, bad])
    except Exception:
        pass
    else:  # pragma: no cover
        raise AssertionError("upsert should have failed")
    assert store.count() == 0 and store.get("ok") is None
