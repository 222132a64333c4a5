"""Does the community-signal ranking prior hurt retrieval? SemEval-2016 has no votes,
accepted flags or feedback, so on the real data the prior is 0 for every thread and MAP
cannot move; this check gives every thread *random* signals, unrelated to relevance (the
worst case: signals that carry no information), and measures the MAP cost per weight.

    python -m eval.prior_check --data ../shared/data/semeval2016 --split train
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from eval import harness
from eval.datasets import load
from eval.entry import run
from eval.retrieval import evaluate
from retrieval.prior import Signals
from retrieval.search import Searcher
from service.config import Settings
from service.runtime import build_engine

WEIGHTS = (0.0, 0.02, 0.05, 0.1, 0.2)


def random_signals(pks: Sequence[int], seed: int) -> dict[int, Signals]:
    rng = np.random.default_rng(seed)
    return {
        int(pk): Signals(
            accepted=bool(rng.random() < 0.3),
            votes=int(rng.poisson(3)),
            helpful=int(rng.poisson(1.0)),
            unhelpful=int(rng.poisson(0.5)),
        )
        for pk in pks
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="train")
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    data = load(args.data, args.split)
    with tempfile.TemporaryDirectory() as tmp:
        engine = build_engine(Settings(data_dir=Path(tmp)), with_triage=False)
        engine.save_on_exit = False
        with engine:
            engine.ingest(harness.corpus_threads(data))
            pks = engine.corpus.store.pks().tolist()
            base = engine.searcher.params
            print(
                f"| weight | MAP, real signals (none) | MAP, random signals: mean (min) over "
                f"{args.seeds} seeds |"
            )
            print("|---|---|---|")
            for w in WEIGHTS:
                params = replace(base, prior_weight=w)
                real = evaluate(
                    "real",
                    Searcher(
                        engine.corpus,
                        engine.encoder,
                        params,
                        engine.signals,
                        query_form=engine.searcher.query_form,
                    ),
                    data,
                    "candidates",
                )
                noisy = []
                for seed in range(args.seeds):
                    table = random_signals(pks, seed)
                    source = lambda ids, t=table: {i: t[i] for i in ids if i in t}  # noqa: E731
                    run = evaluate(
                        "noise",
                        Searcher(
                            engine.corpus,
                            engine.encoder,
                            params,
                            source,
                            query_form=engine.searcher.query_form,
                        ),
                        data,
                        "candidates",
                    )
                    noisy.append(run.scores["map"])
                print(
                    f"| {w} | {real.scores['map']:.4f} | {np.mean(noisy):.4f} ({min(noisy):.4f}) |"
                )


if __name__ == "__main__":
    run(main)
