"""``unsource eval served`` against a fresh served demo (default encoder pair, relevance
stage, real triage), as held-out sets are scored: lumio's report split through
``/v1/suggest``. The bounds sit a little under what 2026-12-07's run measured (62 of 66
answerable questions shown their answer first, 0 of 40 unanswerable and 0 of 20 off-topic
shown a thread; docs/eval/served): a drop past them is a regression of the served path,
relevance stage and triage together."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from eval.served import DEVSETS
from service.cli.root import app
from tests.server import serve_demo
from tests.support import KEYS, auth

pytestmark = pytest.mark.slow

CHIME = "my old mechanical chime doesn't ring with the doorbell"
TWICE = "Why was I charged twice for Lumio Plus this month?"


def test_the_demo_s_report_questions_through_v1_suggest(
    tmp_path: Path, real_triage_dir: Path
) -> None:
    out = tmp_path / "served"
    # 126 questions from one key: past the public budget (120/min) each would wait out a 429
    unlimited = json.dumps({r: "100000/minute" for r in ("public", "agent", "admin")})
    with serve_demo(tmp_path, real_triage_dir, UNSOURCE_RATE_LIMITS=unlimited) as served:
        r = CliRunner().invoke(
            app,
            ["eval", "served", "--url", served.base, "--api-key", KEYS["public"],
             "--devset", str(DEVSETS / "lumio"), "--out", str(out)],
        )  # fmt: skip
        public = httpx.Client(base_url=served.base, headers=auth("public"), timeout=60)
        # the classifier alone says staff, just above its threshold (P 0.35 measured), and
        # the forum answers it: the policy's [answered] band shows the answer instead
        chime = public.post("/v1/suggest", json={"title": CHIME}).json()
        # a decisive phrase ("charged twice") is final, whatever the forum holds
        billing = public.post("/v1/suggest", json={"title": TWICE}).json()
        agent = httpx.Client(base_url=served.base, headers=auth("agent"), timeout=60)
        routed = agent.post("/v1/triage", json={"text": CHIME}).json()  # routed the same way
        metrics = agent.get("/metrics").text
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "served.json").read_text())["summary"]
    total = {"answered": 0, "answerable": 0, "unanswerable_shown": 0, "off_topic_shown": 0}
    for language in ("en", "pt", "es", "it"):
        cell = summary[f"lumio/{language}"]
        answerable = cell["answerable"]
        # every language keeps most of its answers (es, the fewest: 9 of 12 measured)
        assert answerable.get("answered", 0) >= 0.7 * answerable["n"], (language, answerable)
        total["answered"] += answerable.get("answered", 0)
        total["answerable"] += answerable["n"]
        total["unanswerable_shown"] += cell["unanswerable"].get("suggest", 0)
        total["off_topic_shown"] += cell["off_topic"].get("suggest", 0)
    assert total["answerable"] == 66
    assert total["answered"] >= 58, total
    assert total["unanswerable_shown"] <= 3, total
    assert total["off_topic_shown"] <= 1, total
    assert chime["decision"] == "suggest", chime
    assert [r["kind"] for r in chime["reasons"]] == ["classifier", "answered"]
    assert chime["reasons"][1]["label"] == chime["suggestions"][0]["thread_id"] == "lumio-024"
    assert (billing["decision"], billing["suggestions"]) == ("staff", []), billing
    assert routed["route"] == "community" and routed["reasons"][-1]["label"] == "lumio-024"
    for endpoint in ("suggest", "triage"):
        pattern = rf'^unsource_answered_in_public_total\{{endpoint="{endpoint}"\}} (\S+)$'
        yielded = re.search(pattern, metrics, re.M)
        assert yielded is not None and float(yielded.group(1)) >= 1.0, endpoint
