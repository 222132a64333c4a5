"""Triage evaluation: staff-route recall/precision/F1, the per-queue confusion matrix, the
recall/precision curve over the classifier threshold, the staff rate, and intent accuracy
where the labels are the model's own intents (BANKING77's 77-way accuracy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eval.harness import _pyplot
from triage.datasets import Labelled
from triage.decision import Triage, TriageDecision, decide
from triage.lexicon import QUEUES

# published numbers to read ours against
REFERENCE = {"banking77_intent_accuracy": 0.9366}  # fine-tuned BERT-large (issue's reference)
QUEUE_LABELS = ("community", *QUEUES)
GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)


def _prf(pred: np.ndarray, gold: np.ndarray) -> dict[str, Any]:
    tp = int((pred & gold).sum())
    community = int((~gold).sum())
    recall = tp / max(int(gold.sum()), 1)
    precision = tp / max(int(pred.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "recall": round(recall, 4),
        "precision": round(precision, 4),
        "f1": round(f1, 4),
        "staff_rate": round(float(pred.mean()) if len(pred) else 0.0, 4),
        # community questions taken away from the community: what the product exists to save
        "false_staff_rate": round(int((pred & ~gold).sum()) / community, 4) if community else None,
        "staff_true": int(gold.sum()),
        "staff_predicted": int(pred.sum()),
        "n": len(gold),
    }


def route_rows(
    triage: Triage, texts: list[str]
) -> tuple[list[TriageDecision], np.ndarray, np.ndarray]:
    """Decisions for ``texts`` in one encoder call (no deadline, no evidence), the class
    probabilities behind them, and which texts the rules alone send to staff (a PII type
    the policy forces, or a decisive lexicon phrase)."""
    screened = [triage.screen(t) for t in texts]
    vectors = triage.encoder.encode([redacted for _, redacted, _ in screened])
    predictions = triage.model.predict_vectors(vectors, evidence=0)
    decisions = [
        decide(triage.policy, triage.model.version, redacted, findings, hits, p)
        for (findings, redacted, hits), p in zip(screened, predictions, strict=True)
    ]
    forced = triage.policy.pii.staff_types
    rules = np.array(
        [
            any(f.type in forced for f in findings) or any(h.decisive for h in hits)
            for findings, _, hits in screened
        ]
    )
    return decisions, triage.model.probabilities(vectors), rules


def _intent_accuracy(triage: Triage, rows: list[Labelled], probs: np.ndarray) -> dict[str, Any]:
    """Accuracy over the intents of the rows' own data set (e.g. 77-way for BANKING77)."""
    classes = [str(c) for c in triage.model.classes]
    sources = {r.label.split(":", 1)[0] for r in rows}
    if len(sources) != 1 or not all(r.label in classes for r in rows):
        return {}
    source = sources.pop()
    own = np.array([c.split(":", 1)[0] == source for c in classes])
    masked = np.where(own, probs, -1.0)
    predicted = [classes[i] for i in masked.argmax(axis=1)]
    correct = sum(p == r.label for p, r in zip(predicted, rows, strict=True))
    return {"source": source, "classes": int(own.sum()), "accuracy": round(correct / len(rows), 4)}


def evaluate(
    triage: Triage, rows: list[Labelled], name: str, target_recall: float = 0.99
) -> dict[str, Any]:
    decisions, probs, rule_staff = route_rows(triage, [r.text for r in rows])
    gold = np.array([r.route == "staff" for r in rows])
    pred = np.array([d.route == "staff" for d in decisions])
    p_staff = np.array([d.p_staff if d.p_staff is not None else 1.0 for d in decisions])
    curve: list[dict[str, Any]] = []
    for t in GRID:
        clf = p_staff >= t
        curve.append(
            {
                "threshold": float(t),
                "pipeline": _prf(clf | rule_staff, gold),
                "classifier": _prf(clf, gold),
            }
        )
    meeting = [c for c in curve if c["pipeline"]["recall"] >= target_recall]
    true_q = [r.queue or "community" for r in rows]
    pred_q = [d.queue or "community" for d in decisions]
    index = {q: i for i, q in enumerate(QUEUE_LABELS)}
    matrix = np.zeros((len(QUEUE_LABELS), len(QUEUE_LABELS)), dtype=int)
    for t, p in zip(true_q, pred_q, strict=True):
        matrix[index[t], index.get(p, 0)] += 1
    both_staff = gold & pred
    queue_ok = sum(t == p for t, p, s in zip(true_q, pred_q, both_staff, strict=True) if s)
    result: dict[str, Any] = {
        "dataset": name,
        "model_version": triage.model.version,
        "encoder": triage.model.encoder_name,
        "policy_threshold": triage.policy.classifier.threshold,
        "staff": _prf(pred, gold),
        "classifier_only": _prf(p_staff >= triage.policy.classifier.threshold, gold),
        "rules_only": _prf(rule_staff, gold),
        "queue_accuracy_on_staff": round(queue_ok / max(int(both_staff.sum()), 1), 4),
        "confusion": {"labels": list(QUEUE_LABELS), "matrix": matrix.tolist()},
        "curve": curve,
        "target_recall": target_recall,
        "highest_threshold_meeting_target": meeting[-1] if meeting else None,
        "intent": _intent_accuracy(triage, rows, probs),
        "reference": REFERENCE,
        "misrouted": [
            {"text": d.redacted_text, "gold": r.route, "predicted": d.route, "p_staff": d.p_staff}
            for r, d, g, p in zip(rows, decisions, gold, pred, strict=True)
            if g != p
        ][:50],
    }
    languages = sorted({r.language for r in rows if r.language})
    if languages:
        langs = np.array([r.language for r in rows])
        result["by_language"] = {
            lang: _prf(pred[langs == lang], gold[langs == lang]) for lang in languages
        }
    if any(r.domain for r in rows):
        keys = np.array([f"{r.language or '-'}/{r.domain or '-'}" for r in rows])
        result["by_language_domain"] = {
            key: _prf(pred[keys == key], gold[keys == key]) for key in sorted(set(keys))
        }
    return result


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _by_language(result: dict[str, Any]) -> list[str]:
    """Per language, and per language and domain, where the result has them."""
    lines: list[str] = []
    if "by_language" not in result:
        return lines
    for title, table in (
        ("language", result["by_language"]),
        ("language/domain", result.get("by_language_domain", {})),
    ):
        if not table:
            continue
        lines += [
            "",
            f"| {title} | staff recall | precision | false staff | staff rate | staff | n |",
            "|---" * 7 + "|",
        ]
        for key, m in table.items():
            recall = f"{m['recall']:.4f}" if m["staff_true"] else "—"
            lines.append(
                f"| {key} | {recall} | {m['precision']:.4f} | "
                f"{_rate(m['false_staff_rate'])} | {m['staff_rate']:.4f} | "
                f"{m['staff_true']} | {m['n']} |"
            )
    return lines


def markdown(result: dict[str, Any]) -> str:
    s, c, r = result["staff"], result["classifier_only"], result["rules_only"]
    lines = [
        f"# Triage: {result['dataset']}",
        "",
        f"Model `{result['model_version']}` (encoder {result['encoder']}), policy threshold "
        f"{result['policy_threshold']}. {s['n']} questions, {s['staff_true']} staff.",
        "",
        "| signals | staff recall | precision | F1 | staff rate |",
        "|---|---|---|---|---|",
    ]
    rows = (("PII + lexicon + classifier", s), ("classifier only", c), ("PII + lexicon only", r))
    for label, m in rows:
        lines.append(
            f"| {label} | {m['recall']:.4f} | {m['precision']:.4f} | {m['f1']:.4f} "
            f"| {m['staff_rate']:.4f} |"
        )
    lines += ["", f"Queue accuracy on correctly routed staff questions: "
              f"{result['queue_accuracy_on_staff']:.4f}.", ""]  # fmt: skip
    best = result["highest_threshold_meeting_target"]
    if best:
        p = best["pipeline"]
        lines.append(
            f"Highest threshold with staff recall ≥ {result['target_recall']}: "
            f"{best['threshold']:.2f} (precision {p['precision']:.4f}, staff rate "
            f"{p['staff_rate']:.4f})."
        )
    else:
        lines.append(f"No threshold reaches staff recall {result['target_recall']}.")
    if result["intent"]:
        i = result["intent"]
        ref = (
            f" (published: {REFERENCE['banking77_intent_accuracy']:.4f}, fine-tuned BERT-large)"
            if i["source"] == "banking77"
            else ""
        )
        lines += ["", f"Intent accuracy, {i['classes']}-way over {i['source']}: "
                  f"{i['accuracy']:.4f}{ref}."]  # fmt: skip
    lines += _by_language(result)
    labels = result["confusion"]["labels"]
    lines += ["", "Confusion (rows: true queue, columns: routed queue):", "",
              "| true \\ routed | " + " | ".join(labels) + " |",
              "|---" * (len(labels) + 1) + "|"]  # fmt: skip
    for label, row in zip(labels, result["confusion"]["matrix"], strict=True):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    t = [c["threshold"] for c in result["curve"]]
    for key, style in (("pipeline", "-"), ("classifier", "--")):
        ax1.plot(t, [c[key]["recall"] for c in result["curve"]], "C0" + style,
                 label=f"staff recall ({key})")  # fmt: skip
        ax1.plot(t, [c[key]["precision"] for c in result["curve"]], "C1" + style,
                 label=f"precision ({key})")  # fmt: skip
    ax1.axvline(result["policy_threshold"], color="grey", linestyle=":", label="policy threshold")
    ax1.axhline(result["target_recall"], color="C0", linestyle=":", linewidth=0.8)
    ax1.set_xlabel("classifier threshold on P(staff)")
    ax1.set_ylim(0, 1.02)
    ax1.set_title(f"Staff routing over the threshold: {result['dataset']}")
    ax1.legend(loc="lower left", fontsize=8)
    labels = result["confusion"]["labels"]
    matrix = np.array(result["confusion"]["matrix"])
    shade = np.log1p(matrix)
    ax2.imshow(shade, cmap="Blues")
    ax2.set_xticks(range(len(labels)), labels, rotation=35, ha="right")
    ax2.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            dark = shade[i, j] > 0.6 * shade.max()
            ax2.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                     color="white" if dark else "black")  # fmt: skip
    ax2.set_xlabel("routed queue")
    ax2.set_ylabel("true queue")
    ax2.set_title("Queue confusion")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
