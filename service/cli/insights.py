"""``unsource insights gaps --out DIR``: the knowledge gaps as gaps.md and gaps.png."""

from __future__ import annotations

import html
import re
from datetime import datetime
from pathlib import Path

from service.insights import Gap


def _plot(gaps: list[Gap], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    labels = [f"#{i + 1}" for i in range(len(gaps))]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(gaps) + 2), 3.5))
    x = range(len(gaps))
    ax.bar([i - 0.2 for i in x], [g.previous for g in gaps], 0.4, label="previous window")
    ax.bar([i + 0.2 for i in x], [g.size for g in gaps], 0.4, label="this window")
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("unanswered questions")
    ax.set_title("Knowledge gaps")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~])")


def inert(text: str) -> str:
    """Public text as plain Markdown text: HTML characters as entities, Markdown's
    metacharacters escaped, one line (security N16: a question's image, link or tag in
    gaps.md rendered live in the staff's viewer)."""
    one_line = " ".join(text.split())
    return _MARKDOWN.sub(r"\\\1", html.escape(one_line, quote=False))


def write(gaps: list[Gap], start: datetime, end: datetime, questions: int, out: Path) -> Path:
    """Write DIR/gaps.md (and DIR/gaps.png when there are gaps); returns the Markdown path."""
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Knowledge gaps",
        "",
        f"{start.isoformat()} to {end.isoformat()}: {questions} questions ended in no_match, "
        f"staff or an escalation; {len(gaps)} gaps (clusters of at least 3, across languages).",
        "",
    ]
    if gaps:
        _plot(gaps, out / "gaps.png")
        lines += ["![gap sizes](gaps.png)", ""]
    for i, g in enumerate(gaps, 1):
        languages = ", ".join(f"{k} {v}" for k, v in sorted(g.languages.items()))
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(g.outcomes.items()))
        lines += [
            f"## #{i}: {g.size} questions ({g.trend:+d} on the previous window)",
            "",
            f"- languages: {languages}; outcomes: {outcomes}",
            f"- missing from the forum: {inert(', '.join(g.missing)) or '-'}",
            f"- nearest thread: {inert(g.nearest_thread or '-')} {inert(g.nearest_title or '')} "
            f"(similarity {g.nearest_similarity})",
            *[f"- \u201c{inert(q)}\u201d" for q in g.questions],
            "",
        ]
    path = out / "gaps.md"
    path.write_text("\n".join(lines))
    return path
