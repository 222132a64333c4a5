"""The rescore's BM25 of a few known threads (index/store/bm25.py) is FTS5's ``bm25()``:
the same scores, the same threads found, on text in the four languages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import index.store.sqlite as sqlite_store
from index.store import bm25
from index.store.analysis import analyze_text
from index.store.protocol import Row
from index.store.sqlite import SQLiteStore
from tests.support import make_thread

WORDS = {
    "en": "hub reset light blinks camera records card cloud bulbs dimmer firmware update "
    "router wifi battery sensor pairing fails schedule garage",
    "pt": "hub reiniciar luz pisca câmera grava cartão nuvem lâmpadas atualização roteador "
    "bateria sensor pareamento falha configuração garagem",
    "es": "hub reiniciar luz parpadea cámara graba tarjeta nube bombillas actualización "
    "enrutador batería sensor emparejamiento falla configuración garaje",
    "it": "hub ripristinare luce lampeggia telecamera registra scheda nuvola lampadine "
    "aggiornamento router batteria sensore abbinamento errore configurazione garage",
}
LANGUAGES = sorted(WORDS)


def _store(tmp_path: Path, texts: list[tuple[str, str, str, str]]) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "threads.db")
    rows = [
        Row(make_thread(f"t{i}", t, b, a, language=lang), f"h{i}", "m", np.ones(4, np.float32))
        for i, (lang, t, b, a) in enumerate(texts)
    ]
    store.upsert(rows)
    return store


def _both(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch, query: str, within: list[int], lang: str
) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """The computed scores, then FTS5's for the same search."""
    mine = store.keyword_search(query, len(within), within=within, language=lang)
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_store, "KNOWN_ROWS_MAX", -1)
        theirs = store.keyword_search(query, len(within), within=within, language=lang)
    return mine, theirs


def _same(mine: list[tuple[int, float]], theirs: list[tuple[int, float]]) -> None:
    assert dict(mine).keys() == dict(theirs).keys()
    for pk, value in theirs:
        assert dict(mine)[pk] == pytest.approx(value, rel=1e-9, abs=1e-12)
    assert [s for _, s in mine] == sorted((s for _, s in mine), reverse=True)


text = st.lists(st.sampled_from(range(1000)), min_size=0, max_size=12)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    docs=st.lists(st.tuples(st.sampled_from(LANGUAGES), text, text, text), min_size=1, max_size=25),
    asked=st.tuples(st.sampled_from(LANGUAGES), text),
    picks=st.lists(st.integers(0, 24), min_size=1, max_size=12),
    data=st.data(),
)
def test_scores_are_fts5s_bm25(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    docs: list[tuple[str, list[int], list[int], list[int]]],
    asked: tuple[str, list[int]],
    picks: list[int],
    data: st.DataObject,
) -> None:
    def words(lang: str, idx: list[int]) -> str:
        pool = WORDS[lang].split()
        return " ".join(pool[i % len(pool)] for i in idx)

    texts = [
        (lang, words(lang, t) or "x", words(lang, b), words(lang, a)) for lang, t, b, a in docs
    ]
    store = _store(tmp_path_factory.mktemp("bm25"), texts)
    try:
        keys = sorted(p.pk for p in (store.get(f"t{i}") for i in range(len(texts))) if p)
        within = sorted({keys[i % len(keys)] for i in picks})
        lang, idx = asked
        _same(*_both(store, monkeypatch, words(lang, idx) or "hub", within, lang))
    finally:
        store.close()


def test_scores_follow_writes_and_keep_fts5s_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(
        tmp_path,
        [
            ("en", "Reset the hub", "The hub light blinks", "Hold reset for 15 seconds"),
            ("pt", "Reiniciar o hub", "A luz do hub pisca", "Segure o botão"),
            ("en", "Camera records to a card", "", "Yes, a microSD card"),
            ("en", "Garage opener", "Does the hub open a garage?", ""),
        ],
    )
    pks = [store.get(f"t{i}").pk for i in range(4)]  # type: ignore[union-attr]
    mine, theirs = _both(store, monkeypatch, "hub reset garage", pks, "en")
    _same(mine, theirs)
    # the rarest term first; the pt thread holds "hub" too, the camera thread no term
    assert [pk for pk, _ in mine] == [pks[3], pks[0], pks[1]]
    counted = store.doc_counts.counted
    store.keyword_search("hub reset garage", 4, within=pks, language="en")
    assert store.doc_counts.counted == counted  # the counts were kept
    more = [("en", f"Hub {i}", "hub", "") for i in range(5)]
    store.upsert(
        [
            Row(make_thread(f"n{i}", *t[1:], language="en"), f"n{i}", "m", np.ones(4, np.float32))
            for i, t in enumerate(more)
        ]
    )
    _same(*_both(store, monkeypatch, "hub reset garage", pks, "en"))  # counted again
    assert store.doc_counts.counted > counted
    assert store.keyword_search("zigbee", 4, within=pks, language="en") == []
    store.close()


def test_a_term_fts5_reads_as_a_phrase_is_left_to_fts5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path, [("en", "Set wifi_mode to auto", "", ""), ("en", "wifi mode", "", "")])
    pks = [store.get(f"t{i}").pk for i in range(2)]  # type: ignore[union-attr]
    assert not bm25.plain("wifi_mode") and bm25.plain("wifi")
    mine, theirs = _both(store, monkeypatch, "wifi_mode", pks, "en")
    assert mine == theirs and {pk for pk, _ in mine} == set(pks)
    store.close()


def test_varints_and_document_counts() -> None:
    assert bm25.varints(bytes([0x05, 0x82, 0x2C, 0x7F])) == [5, 300, 127]
    assert bm25.varints(bytes([0xFF] * 8 + [0x01])) == [(2**56 - 1) << 8 | 1]
    assert bm25.idf(10, 9) == 1e-6 and bm25.idf(10, 1) > 0
    now, writes = [0.0], [0]
    counts = bm25.DocCounts(lambda: writes[0], ttl=10, size=2, clock=lambda: now[0])
    seen: list[str] = []

    def count(term: str) -> int:
        seen.append(term)
        return len(term)

    assert counts.get(["ab", "abc"], count) == [2, 3] and seen == ["ab", "abc"]
    assert counts.get(["ab"], count) == [2] and seen == ["ab", "abc"]  # kept
    writes[0] = 1  # this process wrote: counted again
    assert counts.get(["ab"], count) == [2] and seen[-1] == "ab" and len(seen) == 3
    now[0] = 11.0  # past the ttl
    counts.get(["ab"], count)
    assert len(seen) == 4
    counts.get(["x", "y"], count)  # over ``size``: the cache starts again
    assert len(counts._cache) <= 2


def test_a_fields_tokens_are_its_analysed_text_split_and_kept() -> None:
    text = "Ação: las bombillas NO se encienden después del corte"
    got = bm25.field_tokens(text, "es")
    assert list(got) == bm25.tokens(analyze_text(text, "es"))
    assert bm25.field_tokens(text, "es") is got  # the second candidate read is cached
    assert bm25.field_tokens(None, None) == ()
