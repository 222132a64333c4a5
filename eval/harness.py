"""Retrieval and abstention evaluations: build an index of a data set, run every ranker,
write JSON + Markdown + PNG. The service's own Searcher does all the ranking."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eval import multilingual
from eval.datasets import RetrievalSet
from eval.retrieval import Protocol, RunResult, evaluate, given_order
from index.ingest import validate_records
from index.models import Thread
from retrieval.search import Searcher, SearchParams
from service.runtime import Engine

# Published MAP on the official SemEval-2016 Task 3 subtask B test set (Nakov et al., 2016).
SEMEVAL_REFERENCE = {
    "test2016": {"search engine order": 0.7475, "best system (UH-PRHLT primary)": 0.7670},
    "dev": {"search engine order": 0.7096},
}
METRICS = ("map", "mrr@10", "ndcg@10", "recall@5", "p@1")


def corpus_threads(data: RetrievalSet) -> list[Thread]:
    """The data set's corpus as threads (a document without a title gets its text's start)."""
    rows = (
        (i, {**row, "title": row.get("title") or row.get("body", "")[:200] or "(untitled)"})
        for i, row in enumerate(data.corpus, start=1)
    )
    return validate_records(rows, source=data.name, label="corpus row").threads


def rankers(base: SearchParams) -> dict[str, SearchParams]:
    """The baselines beside the configured ranker, so every gain is visible."""
    return {
        "bm25 (FTS5)": replace(base, fusion="bm25"),
        "dense": replace(base, fusion="dense"),
        "hybrid rrf": replace(base, fusion="rrf"),
        "hybrid linear": replace(base, fusion="linear"),
        f"final ({base.fusion})": base,
    }


def run_retrieval(
    engine: Engine, data: RetrievalSet, protocol: Protocol, split: str
) -> dict[str, Any]:
    runs: list[RunResult] = []
    if protocol == "candidates":
        runs.append(given_order(data))
    for name, params in rankers(engine.searcher.params).items():
        searcher = Searcher(
            engine.corpus,
            engine.encoder,
            params,
            engine.signals,
            query_form=engine.searcher.query_form,
        )
        runs.append(evaluate(name, searcher, data, protocol))
    final = runs[-1]
    pairs = multilingual.per_pair(data, final) if any(q.language for q in data.queries) else {}
    return {
        "per_language_pair": pairs,
        "dataset": data.name,
        "split": split,
        "protocol": protocol,
        "queries": len(data.queries),
        "model": engine.encoder.name,
        "map": final.scores["map"],
        "final": final.name,
        "runs": {r.name: r.scores for r in runs},
        "reference": SEMEVAL_REFERENCE.get(split, {}) if data.name.startswith("semeval") else {},
        "per_query": {q: final.per_query[q] for q in sorted(final.per_query)},
    }


def markdown_retrieval(result: dict[str, Any]) -> str:
    lines = [
        f"# Retrieval: {result['dataset']} ({result['protocol']} protocol)",
        "",
        f"{result['queries']} queries, model `{result['model']}`.",
        "",
        "| ranker | " + " | ".join(METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for name, scores in result["runs"].items():
        lines.append(f"| {name} | " + " | ".join(f"{scores[m]:.4f}" for m in METRICS) + " |")
    if result["reference"]:
        lines += ["", "Published reference (MAP):", ""]
        lines += [f"- {k}: {v:.4f}" for k, v in result["reference"].items()]
    if result.get("per_language_pair"):
        lines += ["", "## Per pair of languages (final ranker)", ""]
        lines.append(multilingual.markdown_pairs(result["per_language_pair"]))
    return "\n".join(lines) + "\n"


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_retrieval(result: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    names = list(result["runs"])
    fig, ax = plt.subplots(figsize=(10, 5))
    width = 0.8 / len(METRICS)
    for j, metric in enumerate(METRICS):
        values = [result["runs"][n][metric] for n in names]
        ax.bar([i + j * width for i in range(len(names))], values, width, label=metric)
    for label, value in result["reference"].items():
        ax.axhline(value, linestyle="--", linewidth=1, color="grey")
        ax.text(len(names) - 0.5, value, f"{label} MAP {value:.4f}", fontsize=8, va="bottom")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=15)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.set_title(f"{result['dataset']} — {result['protocol']} protocol")
    ax.legend(ncols=len(METRICS), fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@dataclass
class AbstentionPoint:
    threshold: float
    coverage: float
    precision: float


def abstention_curve(
    top: list[tuple[float, bool]],
) -> list[AbstentionPoint]:
    """For each distinct top-1 similarity as threshold: share answered, share correct."""
    points = []
    for t in sorted({s for s, _ in top}):
        answered = [ok for s, ok in top if s >= t]
        points.append(AbstentionPoint(t, len(answered) / len(top), sum(answered) / len(answered)))
    return points


def recommend(points: list[AbstentionPoint], target: float) -> AbstentionPoint | None:
    """The lowest threshold (most coverage) whose precision reaches ``target``."""
    ok = [p for p in points if p.precision >= target]
    return min(ok, key=lambda p: p.threshold) if ok else None


def run_abstention(engine: Engine, data: RetrievalSet, split: str, target: float) -> dict[str, Any]:
    """Top suggestion correct = relevant; judged on the labelled candidate lists. A set
    with off-topic questions is also scored per question language (full corpus)."""
    per_language = (
        multilingual.language_abstention(
            engine.searcher,
            data,
            engine.settings.thresholds_by_language(),
            engine.settings.min_similarity,
        )
        if any(q.off_topic for q in data.queries)
        else {}
    )
    top: list[tuple[float, bool]] = []
    for q in data.queries:
        cands = data.candidates.get(q.id)
        if not cands:
            continue
        pks = engine.store.pks_for_ids(cands)
        ranked = engine.searcher.rank(q.title, q.body, limit=len(pks), within=list(pks.values()))
        if not ranked:
            continue
        by_pk = {pk: tid for tid, pk in pks.items()}
        best_pk, _, similarity, _ = ranked[0]
        top.append((similarity, by_pk[best_pk] in data.relevant(q.id)))
    points = abstention_curve(top)
    pick = recommend(points, target)
    return {
        "dataset": data.name,
        "split": split,
        "queries": len(top),
        "target_precision": target,
        "precision_at_full_coverage": points[0].precision if points else None,
        "recommended_threshold": pick.threshold if pick else None,
        "recommended": pick.__dict__ if pick else None,
        "curve": [p.__dict__ for p in points],
        "per_language": per_language,
    }


def plot_abstention(result: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    curve = result["curve"]
    if not curve:
        return
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.plot([p["coverage"] for p in curve], [p["precision"] for p in curve], marker=".")
    ax.axhline(result["target_precision"], linestyle="--", color="grey", label="target precision")
    if result["recommended"]:
        r = result["recommended"]
        ax.scatter([r["coverage"]], [r["precision"]], color="red", zorder=3,
                   label=f"threshold {r['threshold']:.3f}")  # fmt: skip
    ax.set_xlabel("coverage (share of questions answered with a suggestion)")
    ax.set_ylabel("precision of the top suggestion")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Abstention: {result['dataset']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(out: Path, stem: str, result: dict[str, Any], markdown: str,
          plot: Callable[[dict[str, Any], Path], None]) -> list[Path]:  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.json", out / f"{stem}.md", out / f"{stem}.png"]
    paths[0].write_text(json.dumps(result, indent=2))
    paths[1].write_text(markdown)
    plot(result, paths[2])
    return paths


def markdown_abstention(result: dict[str, Any]) -> str:
    rec = result["recommended"]
    lines = [
        f"# Abstention: {result['dataset']}",
        "",
        f"{result['queries']} queries; top suggestion correct = a relevant thread.",
        "Precision at full coverage: "
        + (
            "— (no candidate lists)"
            if result["precision_at_full_coverage"] is None
            else f"{result['precision_at_full_coverage']:.4f}."
        ),
        "",
    ]
    if rec:
        lines.append(
            f"Recommended `UNSOURCE_MIN_SIMILARITY={rec['threshold']:.3f}`: precision "
            f"{rec['precision']:.4f} at coverage {rec['coverage']:.4f} "
            f"(target {result['target_precision']})."
        )
    elif result["curve"]:
        lines.append(f"No threshold reaches precision {result['target_precision']}.")
    if result.get("per_language"):
        lines += ["", "## Per question language (full corpus)", ""]
        lines.append(multilingual.markdown_language_abstention(result["per_language"]))
        lines += [
            "",
            "Recommended: the middle of the thresholds that keep off-topic suggestions "
            f"<= {multilingual.OFF_TOPIC_MAX:.0%} and answerable no_match <= "
            f"{multilingual.ANSWERABLE_NO_MATCH_MAX:.0%} (else the fewest errors of both "
            "kinds); set them with `UNSOURCE_LANGUAGE_THRESHOLDS`.",
        ]
    return "\n".join(lines) + "\n"
