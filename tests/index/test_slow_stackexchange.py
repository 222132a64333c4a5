"""The Stack Exchange sample with the real default encoders: each question closed as a
duplicate (not imported) finds its original among the first stage's top 3."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.sources.stackexchange import Dump
from service.cli.output import load_settings
from service.runtime import build_engine

pytestmark = pytest.mark.slow
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "stackexchange"


def test_closed_duplicates_find_their_original(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    with Dump.open(SAMPLE) as dump, build_engine(settings, with_triage=False) as engine:
        for batch in dump.threads():
            engine.ingest(batch)
        ranks = []
        for dup, original in dump.report.duplicates.items():
            title, _, body = dump.report.duplicate_text[dup].partition("\n")
            ranked = engine.searcher.rank(title, body, limit=10)
            order = {pk: i for i, (pk, *_rest) in enumerate(ranked)}
            stored = engine.store.get_many([r[0] for r in ranked])
            ids = [stored[pk].thread.id for pk in sorted(stored, key=order.__getitem__)]
            ranks.append(ids.index(original) if original in ids else 99)
    top1 = sum(r == 0 for r in ranks) / len(ranks)
    top3 = sum(r < 3 for r in ranks) / len(ranks)
    print(f"\n{len(ranks)} duplicates: top-1 {top1:.2f}, top-3 {top3:.2f}")
    assert len(ranks) == 11
    assert top3 >= 0.8, ranks  # measured: top-1 0.73 (8 of 11), top-3 0.91 (10 of 11)
