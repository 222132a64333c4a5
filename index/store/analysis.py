"""Keyword analysis per language: words, stopwords, Snowball stems (PyStemmer).

One analyzer for both stores, so a question ranks the same on SQLite and PostgreSQL: a
thread's title/body/answer are analysed with its own language's stemmer when written (the
SQLite triggers call ``analyze_text`` as a SQL function; the PostgreSQL store passes the
analysed text to ``to_tsvector('simple', ...)``), and a question with its own language's
stemmer when searched. The stemmers are the Snowball algorithms PostgreSQL's ``english``,
``portuguese``, ``spanish`` and ``italian`` text-search configurations use; running them
in Python keeps the two backends' keyword rankings identical. Words are stemmed first and
folded (case, accents) after, so "configuração" and "configuracao" meet. Text in another
language is folded and filtered by the stopwords of all four, not stemmed.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

ANALYZER = "snowball-1"  # stored beside the keyword index; a change re-indexes it
STEMMERS = {"en": "english", "pt": "portuguese", "es": "spanish", "it": "italian"}

_STOP = {
    "en": "a an and are as at be but by can could do does for from had has have how i if in "
    "is it its me my of on or our so that the their them there they this to was we were "
    "what when where which who why will with would you your any some get got just not",
    "pt": "o os a as um uma uns umas de da do das dos em no na nos nas que e para por com "
    "se eu meu minha meus minhas ao aos seu sua como mais mas foi ser esta isso ele ela "
    "nao tem ja ou quando muito nem",
    "es": "el la los las un una unos unas de del al en y que es por con para mi mis lo le "
    "les su sus se como mas pero fue ser esta este eso no ya o cuando muy ni me yo tu",
    "it": "il lo la i gli le un uno una di da del della dei delle in con su per tra fra "
    "che e non mi mio mia miei mie si come piu ma era essere questo questa ho ha sono "
    "o quando molto ne al alla ai",
}
STOPWORDS = {lang: frozenset(words.split()) for lang, words in _STOP.items()}
ALL_STOPWORDS = frozenset().union(*STOPWORDS.values())
_WORD = re.compile(r"\w+", re.UNICODE)


def fold(text: str) -> str:
    """Case-folded, accents removed (NFKD without combining marks). ASCII text is only
    lower-cased (NFKD and casefold change no ASCII character but the letters' case), and
    the marks are dropped with one ``str.translate``: a question's candidate rows are
    analysed on every English rescore, where the character-by-character loop took most of
    its time."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    if decomposed.isascii():
        return decomposed
    stripped = decomposed.translate(_combining_marks())
    if stripped.isascii() or max(stripped) <= _BMP:
        return stripped
    # a character beyond the BMP, whose marks the table does not list
    return "".join(c for c in stripped if not unicodedata.combining(c))


_BMP = "\uffff"


@lru_cache(maxsize=1)
def _combining_marks() -> dict[int, None]:
    """Every combining mark of the Basic Multilingual Plane, for ``str.translate``."""
    return {c: None for c in range(0x10000) if unicodedata.combining(chr(c))}


@lru_cache(maxsize=8)
def _stemmer(language: str) -> Any:
    import Stemmer

    return Stemmer.Stemmer(STEMMERS[language])


def folded_words(text: str) -> tuple[list[str], list[str]]:
    """The words of ``text`` (lower-cased) and each one folded, in one pass over the text."""
    words = _WORD.findall(text.lower())
    folded = fold(" ".join(words)).split()  # one pass over the text, not one per word
    if len(folded) != len(words):  # a character that folds into a separator: word by word
        folded = [fold(w) for w in words]
    return words, folded


def terms(text: str, language: str | None, stop: frozenset[str] | None = None) -> list[str]:
    """The analysed words of ``text``: stopwords (``language``'s by default) and numbers
    out, stemmed, folded."""
    words, folded = folded_words(text)
    stop = stop if stop is not None else STOPWORDS.get(language or "", ALL_STOPWORDS)
    kept = [w for w, f in zip(words, folded, strict=True) if len(w) > 1 and not w.isdigit()
            and f not in stop]  # fmt: skip
    if language in STEMMERS:
        kept = _stemmer(language).stemWords(kept)
    return fold(" ".join(kept)).split() if kept else []


def analyze_text(text: str | None, language: str | None) -> str:
    """``terms`` joined by spaces: what the keyword index holds for a field."""
    return " ".join(terms(text or "", language))


def query_terms(text: str, language: str | None, max_terms: int = 32) -> list[str]:
    """The distinct words to search for a question, at most ``max_terms``: its words
    stemmed in ``language`` and also unstemmed (threads of no known language); with no
    language, stemmed in each served language (a short question's language is a guess)."""
    known = language in STEMMERS
    languages = [language] if known else list(STEMMERS)
    stop = None if known else ALL_STOPWORDS
    found: dict[str, None] = {}
    for lang in languages:
        found.update(dict.fromkeys(terms(text, lang, stop)))
    found.update(dict.fromkeys(terms(text, None)))
    return list(found)[:max_terms]
