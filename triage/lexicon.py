"""Keyword lexicon for confidential topics, kept as data files (``triage/lexicon/*.toml``,
one per language, one list of phrases per staff queue).

Text and phrases are both folded (case folding, accents removed, apostrophes unified) and
matched on word boundaries, so ``Fatura``, ``fatura`` and ``FATURA`` match the same
phrase, while ``fraud`` does not match inside ``fraudster``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from index.errors import UnsourceError
from index.store import fold as fold_accents

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


@dataclass(frozen=True)
class _Entry:
    queue: str
    language: str
    pattern: re.Pattern[str]
    phrase: str


class Lexicon:
    def __init__(self, entries: list[_Entry]) -> None:
        self._entries = entries

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
            for queue, phrases in data.items():
                if queue not in QUEUES:
                    raise LexiconError(f"{path}: unknown queue {queue!r}; use one of {QUEUES}")
                if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
                    raise LexiconError(f"{path}: {queue} must be a list of strings")
                for phrase in phrases:
                    entries.append(_Entry(queue, path.stem, _compile(phrase), phrase))
        return cls(entries)

    @property
    def languages(self) -> list[str]:
        return sorted({e.language for e in self._entries})

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, text: str) -> list[LexiconHit]:
        """Every phrase found in ``text``, in file order, each phrase once."""
        folded = fold(text)
        return [
            LexiconHit(e.queue, e.phrase, e.language)
            for e in self._entries
            if e.pattern.search(folded)
        ]


def _compile(phrase: str) -> re.Pattern[str]:
    words = fold(phrase).split()
    if not words:
        raise LexiconError("empty lexicon phrase")
    body = r"\s+".join(re.escape(w) for w in words)
    return re.compile(rf"(?<!\w){body}(?!\w)")
