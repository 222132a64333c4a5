"""Keyword analysis per language (index/store/analysis.py) and the SQLite keyword index
built on it."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from index.store.analysis import ANALYZER, fold, query_terms, terms
from index.store.protocol import Row
from index.store.sqlite import SQLiteStore
from tests.support import make_thread


@pytest.mark.parametrize(
    "language,text,stems",
    [
        ("en", "Updating the firmwares manually", ["updat", "firmwar", "manual"]),
        ("pt", "As configurações do roteador", ["configur", "roteador"]),
        ("es", "Las bombillas parpadean", ["bombill", "parpad"]),
        ("it", "Le lampadine sfarfallano", ["lampadin", "sfarfall"]),
    ],
)
def test_stems_and_stopwords_per_language(language: str, text: str, stems: list[str]) -> None:
    assert terms(text, language) == stems


def _reference_fold(text: str) -> str:
    """The definition: case-folded, NFKD, every combining mark dropped."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@given(
    st.text(
        st.one_of(
            st.characters(),  # anything, beyond the BMP included
            st.sampled_from("áàâãäçéêèëíìîïñóòôõöúùûüÁÉÍÓÚÇÑ ßİﬁ\u0301\u0327\U0001d165"),
        ),
        max_size=40,
    )
)
def test_fold_is_casefold_nfkd_without_combining_marks(text: str) -> None:
    assert fold(text) == _reference_fold(text)


@pytest.mark.parametrize(
    "text,folded",
    [
        ("Configuração", "configuracao"),
        ("PEQUEÑO", "pequeno"),
        ("Straße", "strasse"),
        ("ASCII", "ascii"),
    ],
)
def test_fold_examples(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_a_question_of_unknown_language_is_stemmed_every_way() -> None:
    assert set(query_terms("FABRICA", None)) == {"fabrica", "fabric"}
    assert query_terms("the and of", None) == []


def _store(path: Path) -> SQLiteStore:
    return SQLiteStore(path / "threads.db")


def _row(tid: str, title: str, language: str) -> Row:
    t = make_thread(tid, title).model_copy(update={"language": language})
    return Row(t, tid, "m", np.ones(4, dtype=np.float32))


def test_inflected_forms_meet_in_each_language(tmp_path: Path) -> None:
    store = _store(tmp_path)
    pks, _ = store.upsert(
        [
            _row("pt", "Configurações de fábrica do roteador", "pt"),
            _row("es", "Las bombillas parpadean con el regulador", "es"),
            _row("it", "Le lampadine sfarfallano con il dimmer", "it"),
            _row("en", "Updating firmware manually", "en"),
        ]
    )
    assert [pk for pk, _ in store.keyword_search("configuração", 5, language="pt")] == [pks["pt"]]
    assert [pk for pk, _ in store.keyword_search("bombilla parpadea", 5, language="es")] == [
        pks["es"]
    ]
    assert [pk for pk, _ in store.keyword_search("lampadina", 5, language="it")] == [pks["it"]]
    assert [pk for pk, _ in store.keyword_search("update firmwares", 5, language="en")] == [
        pks["en"]
    ]
    # an edit and a delete keep the index in step (the triggers re-analyse the old row)
    store.upsert([_row("pt", "Senha do Wi-Fi", "pt")])
    assert store.keyword_search("configuração", 5, language="pt") == []
    assert store.delete("es")[0] == pks["es"]
    assert store.keyword_search("bombilla", 5, language="es") == []


def test_an_index_built_another_way_is_rebuilt_on_open(tmp_path: Path) -> None:
    store = _store(tmp_path)
    pks, _ = store.upsert([_row("pt", "Configurações de fábrica", "pt")])
    with store.db.write() as conn:
        conn.exec_driver_sql("UPDATE meta SET value = 'old' WHERE key = 'analyzer'")
        conn.exec_driver_sql("INSERT INTO threads_fts(threads_fts) VALUES ('delete-all')")
    store.close()
    reopened = _store(tmp_path)
    with reopened.db.read() as conn:
        row = conn.exec_driver_sql("SELECT value FROM meta WHERE key='analyzer'").one()
    assert row[0] == ANALYZER
    assert [pk for pk, _ in reopened.keyword_search("configuração", 5, language="pt")] == [
        pks["pt"]
    ]
