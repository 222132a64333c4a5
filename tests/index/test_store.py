"""The thread store's contract. Every test runs once per backend (the ``store`` fixture in
conftest.py is parametrized): SQLite, and a real PostgreSQL server (``slow``)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from index.errors import StoreError
from index.store.common_terms import CommonTerms
from index.store.protocol import Exported, Row, StoredThread, ThreadStore, fts_query
from index.store.sqlite import SQLiteStore
from tests.support import SAMPLE, make_thread


def _rows(threads, dim=4, value=1.0):  # type: ignore[no-untyped-def]
    return [Row(t, f"h-{t.id}", "m", np.full(dim, value, dtype=np.float32)) for t in threads]


def test_upsert_get_roundtrip_keeps_fields(store: ThreadStore) -> None:
    t = make_thread("a-1", "Title", "Body", "Answer", tags=["X", "y"], language="en",
                    answer_votes=5, accepted=True, url="https://f.example/t/1",
                    created_at="2026-01-02T03:04:05Z", answer_author="maria.h")  # fmt: skip
    pks, _ = store.upsert(_rows([t]))
    got = store.get("a-1")
    assert got is not None and got.pk == pks["a-1"]
    assert got.thread == t
    assert got.thread.tags == ["x", "y"] and got.thread.answer_author == "maria.h"
    assert store.get_many([pks["a-1"]])[pks["a-1"]] == got
    assert store.signals([pks["a-1"]]) == {pks["a-1"]: ("a-1", True, 5)}


def test_pk_is_stable_on_update_and_never_reused(store: ThreadStore) -> None:
    first, _ = store.upsert(_rows(SAMPLE[:2]))
    again, _ = store.upsert(_rows([make_thread("t1", "New title")]))
    assert again["t1"] == first["t1"]
    store.delete("t2")
    new, _ = store.upsert(_rows([make_thread("t9", "Another")]))
    assert new["t9"] not in first.values()


def test_generation_counts_committed_writes(store: ThreadStore) -> None:
    g0 = store.generation()
    _, g1 = store.upsert(_rows(SAMPLE))
    assert g1 == store.generation() == g0 + 1
    assert store.delete("missing") == (None, g1)
    assert store.generation() == g1
    pk, g2 = store.delete("t1")
    assert pk is not None and g2 == store.generation() == g0 + 2


def test_changes_since_lists_writes_and_deletes(store: ThreadStore) -> None:
    pks, g1 = store.upsert(_rows(SAMPLE))
    store.upsert(_rows([make_thread("t2", "Bulbs buzz")], value=2.0))
    store.delete("t3")
    ch = store.changes_since(g1)
    assert ch.generation == store.generation() == g1 + 2
    assert ch.pks.tolist() == [pks["t2"]] and ch.models == ["m"]
    assert np.allclose(ch.vectors[0], 2.0)
    assert ch.deleted == [pks["t3"]]
    everything = store.changes_since(0)
    assert sorted(everything.pks.tolist()) == sorted(pks[t] for t in ("t1", "t2", "t4"))
    assert store.changes_since(ch.generation).pks.size == 0


def test_unchanged_text_keeps_the_stored_vector(store: ThreadStore) -> None:
    pks, _ = store.upsert(_rows(SAMPLE[:1], value=3.0))
    store.upsert([Row(SAMPLE[0].model_copy(update={"answer_votes": 7}), "h-t1", "m", None)])
    (model, vec), = store.embeddings_for([pks["t1"]]).values()  # fmt: skip
    assert model == "m" and np.allclose(vec, 3.0)
    assert store.get("t1").thread.answer_votes == 7  # type: ignore[union-attr]


def test_replace_all_restores_exact_contents_and_records_deletions(store: ThreadStore) -> None:
    pks, _ = store.upsert(_rows(SAMPLE[:2]))
    saved = [e for batch in store.iter_export() for e in batch]
    g = store.generation()
    store.upsert(_rows([make_thread("t1", "changed")], value=5.0))
    store.upsert(_rows([make_thread("new", "extra")]))
    store.replace_all(saved)
    assert {t.thread.id: t.pk for b in store.iter_threads() for t in b} == pks
    assert store.get("t1") == saved[0].stored and store.get("new") is None
    ch = store.changes_since(g)
    assert set(ch.pks.tolist()) == set(pks.values()) and len(ch.deleted) == 1
    assert [pk for pk, _ in store.keyword_search("extra", 5)] == []
    assert [pk for pk, _ in store.keyword_search("Reset", 5)] == [pks["t1"]]
    later, _ = store.upsert(_rows([make_thread("after", "x")]))
    assert later["after"] > max(pks.values())


def test_replace_all_can_move_an_id_to_its_snapshot_key(store: ThreadStore) -> None:
    store.upsert(_rows([make_thread("a", "first")]))
    snapshot = [e for b in store.iter_export() for e in b]
    store.delete("a")
    pks, _ = store.upsert(_rows([make_thread("a", "second")]))  # a new key for id "a"
    g = store.generation()
    store.replace_all(snapshot)
    assert store.get("a") == snapshot[0].stored
    assert store.changes_since(g).deleted == [pks["a"]]


def test_export_round_trips_everything(store: ThreadStore) -> None:
    store.upsert(_rows(SAMPLE))
    rows = [e for b in store.iter_export(batch=3) for e in b]
    assert [e.stored.thread for e in rows] == SAMPLE
    assert all(isinstance(e, Exported) and isinstance(e.stored, StoredThread) for e in rows)
    assert rows[0].content_hash == "h-t1" and rows[0].embedding.shape == (4,)
    assert store.pks().tolist() == sorted(e.stored.pk for e in rows)


def test_store_id_is_fixed(store: ThreadStore) -> None:
    sid = store.store_id()
    store.upsert(_rows(SAMPLE))
    assert store.store_id() == sid and len(sid) >= 16


def test_fts_follows_updates_and_deletes(store: ThreadStore) -> None:
    pks, _ = store.upsert(_rows(SAMPLE))
    assert [pk for pk, _ in store.keyword_search("microSD", 5)] == [pks["t3"]]
    store.upsert(_rows([make_thread("t3", "Camera storage options")]))
    assert store.keyword_search("microSD", 5) == []
    assert [pk for pk, _ in store.keyword_search("storage", 5)] == [pks["t3"]]
    store.delete("t3")
    assert store.keyword_search("storage", 5) == []


def test_fts_ranks_title_above_answer(store: ThreadStore) -> None:
    pks, _ = store.upsert(
        _rows([make_thread("in-answer", "Other", answer="router firmware"),
               make_thread("in-title", "Router firmware update", answer="other")])
    )  # fmt: skip
    assert [pk for pk, _ in store.keyword_search("router firmware", 5)] == [
        pks["in-title"], pks["in-answer"]
    ]  # fmt: skip


def test_fts_is_accent_and_case_insensitive_and_safe(store: ThreadStore) -> None:
    pks, _ = store.upsert(_rows(SAMPLE))
    assert [pk for pk, _ in store.keyword_search("FABRICA", 5)] == [pks["t4"]]
    # FTS syntax in user text must not break the query
    assert store.keyword_search('"unbalanced AND (OR NEAR', 5) == []
    hits = store.keyword_search("hub:* & !x | (y", 5)
    assert {pk for pk, _ in hits} == {pks["t1"], pks["t4"]}
    assert fts_query("the and of") is None


def test_keyword_search_within_restricts(store: ThreadStore) -> None:
    pks, _ = store.upsert(_rows(SAMPLE))
    hits = store.keyword_search("hub", 5, within=[pks["t4"]])
    assert [pk for pk, _ in hits] == [pks["t4"]]
    assert store.keyword_search("hub", 5, within=[]) == []


def test_warming_the_keyword_index_primes_the_term_counts_and_stops_when_asked(
    store: ThreadStore,
) -> None:
    pks, _ = store.upsert(_rows(SAMPLE))
    terms = store.common_terms  # type: ignore[attr-defined]
    terms.floor, terms.fraction = 0, 1.0  # as in a large store: counts matter, none drops
    stopped = threading.Event()
    stopped.set()
    assert store.warm_keyword_index(stopped) == 0
    assert terms.counted == 0
    primed = store.warm_keyword_index(threading.Event())
    if isinstance(store, SQLiteStore):  # every term of the five threads, counted once
        assert primed > 0
        hits = store.keyword_search("hub", 5)
        assert terms.counted == 0  # "hub" was primed: not counted again
    else:  # PostgreSQL keeps its own buffer cache and has no term counts to read
        assert primed == 0
        hits = store.keyword_search("hub", 5)
    assert {pk for pk, _ in hits} == {pks["t1"], pks["t4"]}


def test_newest_lists_the_last_written_keys_first(store: ThreadStore) -> None:
    pks, _ = store.upsert(_rows(SAMPLE))
    assert store.newest(2) == sorted(pks.values(), reverse=True)[:2]
    assert store.newest(0) == []


def test_filter_by_language_and_tags(store: ThreadStore) -> None:
    pks, _ = store.upsert(_rows(SAMPLE))
    assert set(store.filter_pks(None, "pt")) == {pks["t4"]}
    assert set(store.filter_pks(["HUB"], None)) == {pks["t1"], pks["t4"]}
    assert set(store.filter_pks(["hub"], "en")) == {pks["t1"]}


def test_failed_transaction_leaves_nothing(store: ThreadStore) -> None:
    bad = Row(make_thread("z", "z"), "h", "m", np.ones(4, dtype=np.float32))
    object.__setattr__(bad, "content_hash", None)  # violates NOT NULL inside the transaction
    good = _rows([make_thread("ok", "fine")])
    g = store.generation()
    with pytest.raises(StoreError):
        store.upsert([*good, bad])
    assert store.count() == 0 and store.get("ok") is None and store.generation() == g
    assert store.ping()


def test_keyword_search_leaves_out_terms_too_common_to_matter(store: ThreadStore) -> None:
    threads = [
        make_thread(f"c{i}", f"Hub model {i}", "zigbee pairing fails" if i == 3 else "")
        for i in range(10)
    ]
    pks, _ = store.upsert(_rows(threads))
    assert len(store.keyword_search("hub zigbee", 20)) == 10  # small store: every term counts
    # as a large store would: "hub" is in all 10 threads, over max(4, 50 % of 10)
    store.common_terms = CommonTerms(store._doc_freq, store.count, floor=4, fraction=0.5)  # type: ignore[attr-defined]
    assert [pk for pk, _ in store.keyword_search("hub zigbee", 20)] == [pks["c3"]]
    assert store.keyword_search("hub", 20) == []  # nothing left to search for
    assert store._doc_freq("zigbee", 4) == 1 and store._doc_freq("hub", 4) == 5  # type: ignore[attr-defined]
