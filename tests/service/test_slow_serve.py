"""`unsource serve` as a real process with the real models, the demo data and API keys."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.server import serve_demo
from tests.support import auth

pytestmark = pytest.mark.slow


def test_served_demo_suggests_and_validates(tmp_path: Path, real_triage_dir: Path) -> None:
    with serve_demo(tmp_path, real_triage_dir) as served:
        base = served.base

        def suggest(title: str, **kw: object) -> httpx.Response:
            payload = {"title": title, **kw}
            return httpx.post(f"{base}/v1/suggest", json=payload, headers=auth("public"))

        assert httpx.post(f"{base}/v1/suggest", json={"title": "hub reset"}).status_code == 401
        r = suggest("How do I factory reset my hub?")
        assert r.status_code == 200
        body = r.json()
        assert body["decision"] == "suggest"
        assert body["suggestions"][0]["thread_id"] == "lumio-001"
        assert r.headers["x-request-id"] == body["request_id"]
        pt = suggest("Como reiniciar o hub de fábrica?")
        assert pt.json()["suggestions"][0]["thread_id"] in {
            "lumio-047",
            "lumio-001",
            "lumio-055",
            "lumio-061",
        }
        bad = suggest("x", k=500)
        assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "k"
        assert suggest("Best pizza recipe with basil").json()["decision"] == "no_match"
        email = "maria.lopes@example.org"
        billing = suggest(f"Fui cobrado duas vezes na assinatura Lumio Plus, {email}")
        assert billing.json()["decision"] == "staff" and billing.json()["suggestions"] == []
        assert email not in billing.text
        metrics = httpx.get(f"{base}/metrics", headers=auth("agent")).text
        assert 'unsource_suggest_decisions_total{decision="staff"} 1.0' in metrics
    log = served.log.read_text()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = [r for r in records if r["logger"] == "unsource.access"]
    assert any(r["route"] == "/v1/suggest" and r["status"] == 200 for r in access)
    assert all(len(r["request_id"]) == 32 for r in access)
    assert email not in log
