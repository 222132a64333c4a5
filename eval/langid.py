"""Language identification accuracy on short texts: ``python -m eval.langid``.

Texts: the STS-benchmark dev sentences in en/es/it/pt (1,500 pairs each, both sentences)
and the lumio dev questions (their `language` field). Reports accuracy per language and on
texts of six words or fewer, for the detector the service uses (retrieval/language.py).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from eval.entry import run
from retrieval.language import SERVED, detect

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STS = ROOT.parent / "shared" / "data" / "stsb_multi_mt"
DEFAULT_LUMIO = ROOT / "eval" / "devsets" / "lumio" / "queries.jsonl"


def texts(sts: Path, lumio: Path) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for lang in SERVED:
        with (sts / f"stsb-{lang}-dev.csv").open(encoding="utf-8") as fh:
            for row in csv.reader(fh):
                out += [(row[0], lang), (row[1], lang)]
    with lumio.open(encoding="utf-8") as fh:
        out += [(q["text"], q["language"]) for q in map(json.loads, fh)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    parser.add_argument("--sts", type=Path, default=DEFAULT_STS)
    parser.add_argument("--lumio", type=Path, default=DEFAULT_LUMIO)
    args = parser.parse_args()
    data = texts(args.sts, args.lumio)
    start = time.perf_counter()
    found = [detect(t) for t, _ in data]
    ms = 1000 * (time.perf_counter() - start) / len(data)
    hits: dict[str, list[bool]] = defaultdict(list)
    for (text, gold), got in zip(data, found, strict=True):
        hits[gold].append(got == gold)
        if len(text.split()) <= 6:
            hits["short (<= 6 words)"].append(got == gold)
    result: dict[str, Any] = {
        k: {"n": len(v), "accuracy": round(sum(v) / len(v), 4)} for k, v in hits.items()
    }
    result["ms_per_text"] = round(ms, 3)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    run(main)
