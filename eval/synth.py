"""A synthetic corpus of any size, for latency and memory at scale (not for quality).

Each synthetic thread starts from one real SemEval-2016 thread: its title and body with
words swapped for words drawn from the whole corpus (so the keyword index sees a
realistic, skewed vocabulary), and its vector is the real thread's embedding plus
Gaussian noise (cosine about 0.8 to it), so the index sees clusters the way real
embeddings form them, without encoding a million texts. Rows go through the store's
own ``upsert``. Questions for load tests come from the same words, each one distinct,
so no request is answered from the query cache.

``python -m eval.synth --threads 1000000 --data-dir DIR`` fills DIR's store.
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval.datasets import load_semeval
from eval.entry import run
from index.corpus import content_hash
from index.models import Thread
from index.store.factory import open_store
from index.store.protocol import Row, ThreadStore
from retrieval.encoders.base import Encoder
from retrieval.text import thread_text

TOPICS = 20  # synthetic threads carry the tag topic-<i mod 20>: each tag matches 1 in 20
FILTER_TAG = "topic-3"
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "semeval2016"
_WORD = re.compile(r"\w+|\W+")


@dataclass
class Seeds:
    """The real threads the synthetic ones vary: texts, their embeddings, the words."""

    titles: list[str]
    bodies: list[str]
    vectors: np.ndarray
    words: list[str]

    @classmethod
    def from_semeval(cls, data_dir: Path, encoder: Encoder, max_body: int = 400) -> Seeds:
        corpus = load_semeval(data_dir, "dev").corpus
        titles = [row.get("title") or row["body"][:80] for row in corpus]
        bodies = [row.get("body", "")[:max_body] for row in corpus]
        texts = [
            thread_text(Thread(id="x", title=t, body=b))
            for t, b in zip(titles, bodies, strict=True)
        ]
        words = [w for t in texts for w in re.findall(r"[^\W\d_]{3,}", t)]
        return cls(titles, bodies, encoder.encode(texts), words)


def _vary(text: str, rng: random.Random, words: list[str], rate: float) -> str:
    parts = _WORD.findall(text)
    return "".join(
        rng.choice(words) if p[0].isalpha() and rng.random() < rate else p for p in parts
    )


def threads(seeds: Seeds, count: int, seed: int = 0) -> Iterator[tuple[Thread, np.ndarray]]:
    """``count`` threads ``syn-0``, ``syn-1``, ... with their vectors (reproducible)."""
    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    dim = seeds.vectors.shape[1]
    for i in range(count):
        j = rng.randrange(len(seeds.titles))
        title = _vary(seeds.titles[j], rng, seeds.words, 0.3)[:300] or "untitled"
        body = _vary(seeds.bodies[j], rng, seeds.words, 0.3)
        # noise only where the seed vector lives: an encoder pair's language blocks stay
        # empty where they are (retrieval/encoders/pair.py)
        live = seeds.vectors[j] != 0
        sigma = np.sqrt((1 / 0.8**2 - 1) / max(int(live.sum()), 1))  # cosine ~0.8 to the seed
        vec = seeds.vectors[j] + sigma * live * noise.standard_normal(dim, dtype=np.float32)
        thread = Thread(
            id=f"syn-{i}", title=title, body=body, tags=[f"topic-{i % TOPICS}"], language="en"
        )
        yield thread, vec / np.linalg.norm(vec)


def questions(seeds: Seeds, count: int, seed: int = 1) -> list[str]:
    """Distinct question titles in the corpus's words (never in the store verbatim)."""
    rng = random.Random(seed)
    out: dict[str, None] = {}
    while len(out) < count:
        j = rng.randrange(len(seeds.titles))
        out.setdefault(_vary(seeds.titles[j], rng, seeds.words, 0.25)[:200].strip() or "help", None)
    return list(out)


def fill(
    store: ThreadStore,
    seeds: Seeds,
    count: int,
    space: str,
    batch: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write ``count`` synthetic threads with their vectors into ``store``."""
    rows: list[Row] = []
    for thread, vec in threads(seeds, count):
        text = thread_text(thread)
        rows.append(Row(thread, content_hash(text), space, vec))
        if len(rows) == batch:
            store.upsert(rows)
            rows = []
            if progress:
                progress(batch)
    if rows:
        store.upsert(rows)
        if progress:
            progress(len(rows))


def main() -> None:
    from service.config import Settings
    from service.runtime import load_encoder_for, space_for

    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--semeval", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    settings = Settings(data_dir=args.data_dir)
    encoder = load_encoder_for(settings)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.database_url, settings.database_path)
    t0 = time.perf_counter()
    fill(
        store, Seeds.from_semeval(args.semeval, encoder), args.threads, space_for(settings, encoder)
    )
    print(f"{args.threads} threads in {time.perf_counter() - t0:.1f} s")
    store.close()


if __name__ == "__main__":
    run(main)
