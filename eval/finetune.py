"""Fine-tune a sentence-transformers encoder on labelled question→thread pairs.

Contrastive training (multiple-negatives ranking loss, scale 20): each question is pulled
toward its relevant threads and away from the other threads in the batch plus one
irrelevant candidate of its own (a hard negative). Other positives of the same question in
the batch are masked, not treated as negatives. Deterministic for a given seed; CPU only
needs a few minutes for SemEval's 67 training questions.

The result is a plain sentence-transformers folder: set ``UNSOURCE_MODEL`` to its path.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eval.datasets import RetrievalSet
from index.errors import EncoderError
from retrieval.encoders.base import resolve_model_path
from retrieval.text import join, question_text


@dataclass(frozen=True)
class Triple:
    question: str
    positive: str
    negative: str | None


def triples(data: RetrievalSet, seed: int = 0) -> list[Triple]:
    """(question, relevant thread, irrelevant candidate) from the data set's qrels."""
    corpus = {str(c["id"]): c for c in data.corpus}
    rng = random.Random(seed)

    def text(tid: str) -> str:
        row = corpus[tid]
        return join([str(row.get("title", "")), str(row.get("body", ""))])

    out: list[Triple] = []
    for q in data.queries:
        relevant = data.qrels.get(q.id, {})
        pool = data.candidates.get(q.id) or list(relevant)
        positives = [t for t in pool if relevant.get(t, 0) >= 1 and t in corpus]
        negatives = [t for t in pool if relevant.get(t, 0) < 1 and t in corpus]
        for p in positives:
            neg = text(rng.choice(negatives)) if negatives else None
            out.append(Triple(question_text(q.title, q.body), text(p), neg))
    return out


def finetune(
    base: str,
    data: RetrievalSet,
    out: Path,
    epochs: int = 2,
    lr: float = 2e-5,
    batch_size: int = 16,
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> Path:
    import torch
    from sentence_transformers import SentenceTransformer

    pairs = triples(data, seed)
    if not pairs:
        raise EncoderError(f"{data.name}: no relevant question-thread pairs to train on")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = SentenceTransformer(resolve_model_path(base), device="cpu")
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    steps = epochs * ((len(pairs) + batch_size - 1) // batch_size)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min(1.0, (s + 1) / warmup))

    def embed(texts: list[str]) -> torch.Tensor:
        features = model.tokenize(texts)
        return torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)

    model.train()
    step = 0
    for _ in range(epochs):
        rng.shuffle(pairs)
        for i in range(0, len(pairs), batch_size):
            batch = pairs[i : i + batch_size]
            questions = embed([b.question for b in batch])
            docs = [b.positive for b in batch] + [b.negative for b in batch if b.negative]
            logits = questions @ embed(docs).T * 20.0
            same = torch.zeros_like(logits, dtype=torch.bool)
            for r, x in enumerate(batch):
                for c, y in enumerate(batch):
                    same[r, c] = c != r and x.question == y.question
            loss = torch.nn.functional.cross_entropy(
                logits.masked_fill(same, -1e4), torch.arange(len(batch))
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            if progress:
                progress(step, steps, float(loss.detach()))
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    return out
