"""Keyword lexicon for confidential topics, kept as data files (``triage/lexicon/*.toml``,
one per language, one list of phrases per staff queue).

Text and phrases are both folded (case folding, accents removed, apostrophes unified) and
matched on word boundaries, so ``Fatura``, ``fatura`` and ``FATURA`` match the same
phrase, while ``fraud`` does not match inside ``fraudster``.

Matching is by tokens, not one regex per phrase: the text is split once into words and
punctuation marks, and each token looks up the phrases that start with it, so a request
costs time linear in its length whatever the number of phrases.

Two strengths. The queue lists at the top of a file are *decisive*: "charged twice",
"stolen card" send a question to staff whatever the classifier says. The ``[hints]`` table
holds phrases that are often, but not always, confidential: "my bill" in "How can I pay my
bill online?", "can't log in" in a browser question, "phishing" in "is this email
phishing?". A hint does not decide; it lowers the classifier's threshold to the policy's
``lexicon.hint_threshold`` and names the queue if the classifier then says staff.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from index.errors import UnsourceError
from index.store.analysis import fold as fold_accents

LEXICON_DIR = Path(__file__).parent / "lexicon"
QUEUES = ("security", "account", "billing", "payments", "personal_records")


class LexiconError(UnsourceError):
    """A lexicon file is missing, malformed or names an unknown queue."""


def fold(text: str) -> str:
    """Case-fold, strip accents and unify apostrophes; keeps string length per character
    only approximately, so spans refer to the folded text."""
    return fold_accents(text.replace("\u2019", "'").replace("\u2018", "'"))


@dataclass(frozen=True)
class LexiconHit:
    queue: str
    phrase: str
    language: str
    decisive: bool = True  # False: a hint (see the module docstring)


_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokens(text: str) -> tuple[str, ...]:
    """Folded words and punctuation marks, in order."""
    return tuple(_TOKEN.findall(fold(text)))


@dataclass(frozen=True)
class _Entry:
    queue: str
    language: str
    words: tuple[str, ...]
    phrase: str
    decisive: bool


class Lexicon:
    def __init__(self, entries: list[_Entry]) -> None:
        self._entries = entries
        self._by_first: dict[str, list[int]] = {}
        for i, entry in enumerate(entries):
            self._by_first.setdefault(entry.words[0], []).append(i)

    @classmethod
    def load(cls, directory: Path = LEXICON_DIR) -> Lexicon:
        files = sorted(directory.glob("*.toml"))
        if not files:
            raise LexiconError(f"no lexicon files (*.toml) in {directory}")
        entries: list[_Entry] = []
        for path in files:
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise LexiconError(f"{path}: {exc}") from exc
            hints = data.pop("hints", {})
            if not isinstance(hints, dict):
                raise LexiconError(f"{path}: hints must be a table of queue = [phrases]")
            for table, decisive in ((data, True), (hints, False)):
                for queue, phrases in table.items():
                    entries += _entries(path, queue, phrases, decisive)
        return cls(entries)

    @property
    def languages(self) -> list[str]:
        return sorted({e.language for e in self._entries})

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, text: str) -> list[LexiconHit]:
        """Every phrase found in ``text``, in file order, each phrase once."""
        words = tokens(text)
        found: set[int] = set()
        for i, word in enumerate(words):
            for j in self._by_first.get(word, ()):
                phrase = self._entries[j].words
                if j not in found and words[i : i + len(phrase)] == phrase:
                    found.add(j)
        return [
            LexiconHit(e.queue, e.phrase, e.language, e.decisive)
            for j, e in enumerate(self._entries)
            if j in found
        ]


def _entries(path: Path, queue: str, phrases: object, decisive: bool) -> list[_Entry]:
    where = f"{path}: {'' if decisive else 'hints.'}{queue}"
    if queue not in QUEUES:
        raise LexiconError(f"{where}: unknown queue {queue!r}; use one of {QUEUES}")
    if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
        raise LexiconError(f"{where} must be a list of strings")
    return [_Entry(queue, path.stem, _phrase_tokens(p), p, decisive) for p in phrases]


def _phrase_tokens(phrase: str) -> tuple[str, ...]:
    words = tokens(phrase)
    if not words:
        raise LexiconError("empty lexicon phrase")
    return words
