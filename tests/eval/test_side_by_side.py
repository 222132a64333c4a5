"""The side-by-side's arithmetic (eval/side_by_side.py): ratios are taken within a repeat,
reported as median [min-max], and a target is met only on the worst repeat."""

from __future__ import annotations

from typing import Any

from eval.side_by_side import markdown, summarise, targets


def _row(job: str, system: str, repeat: int, build: float, p50: float, **q: Any) -> dict[str, Any]:
    return {"job": job, "system": system, "repeat": repeat, "size": 1000, "name": system,
            "build_s": build, "query_p50_ms": p50, "query_p99_ms": p50 * 2, **q}  # fmt: skip


def test_ratios_within_a_repeat_and_the_worst_repeat_decides() -> None:
    runs = []
    for job in ("english", "multilingual"):
        runs += [
            _row(job, "unsource", 0, 10.0, 4.0, dev_map=0.78),
            _row(job, "txtai", 0, 40.0, 10.0, dev_map=0.75),
            _row(job, "faiss", 0, 20.0, 4.0, dev_map=0.80),
            _row(job, "unsource", 1, 20.0, 5.0),  # a slow repeat for everyone
            _row(job, "txtai", 1, 70.0, 11.0),
            _row(job, "faiss", 1, 45.0, 8.0),
        ]
    result: dict[str, Any] = {"size": 1000, "repeats": 2, "jobs": summarise(runs)}
    txtai = result["jobs"]["english"]["txtai"]
    assert txtai["build_ratio"] == {"median": 3.75, "min": 3.5, "max": 4.0}
    assert txtai["query_ratio"] == {"median": 2.35, "min": 2.2, "max": 2.5}
    assert txtai["ingest_per_s"]["max"] == 25.0 and txtai["dev_map"] == 0.75
    lines = targets(result)
    assert len(lines) == 4
    assert lines[0].startswith("- english, against txtai") and lines[0].endswith("met")
    assert "**not met**" in lines[1]  # faiss: query 1.0x and a better MAP
    assert "| txtai | 55.0 [40.0-70.0] |" in markdown(result)
