"""Keyword evidence for a question's best same-language candidates (the ``rescore`` fusion).

A dense ranking alone misses what BM25 sees in English: the rare word a question and its
thread share (a street name, a visa type). Fusing a keyword search over the whole corpus
(``linear``) brings that back, but it costs a search over every posting list of the
question's terms, and it pushes answers written in other languages down: they share no
stems with the question, so every keyword hit in the question's language outranks them.

``rescore`` keeps the dense candidates and reads BM25 only for the best ``depth`` of them
written in the question's language. Each of those moves by ``weight`` × (its max-normalised
BM25 − the mean over them): on average they stay where the cosine put them, so threads in
other languages keep their place against them; among themselves they rank by cosine +
``weight`` × BM25, which orders them as linear fusion with a dense weight of
1 / (1 + ``weight``) does.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping


def keyword_rescore(
    cosine: Mapping[int, float], bm25: Mapping[int, float], rescored: Collection[int], weight: float
) -> dict[int, float]:
    """Scores for ``cosine``'s keys: the cosine, plus for the keys in ``rescored`` the
    centred keyword term (keys of ``rescored`` without a BM25 hit count 0)."""
    fused = dict(cosine)
    keys = [pk for pk in rescored if pk in fused]
    top = max((bm25.get(pk, 0.0) for pk in keys), default=0.0)
    if not keys or top <= 0:
        return fused
    norm = {pk: bm25.get(pk, 0.0) / top for pk in keys}
    mean = sum(norm.values()) / len(keys)
    for pk in keys:
        fused[pk] += weight * (norm[pk] - mean)
    return fused
