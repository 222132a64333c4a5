"""/metrics, /readyz, request ids, redacted JSON logs, the widget files and OpenAPI."""

from __future__ import annotations

import io
import json
import logging
import re

import numpy as np
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import Settings
from service.observability import configure_logging
from service.runtime import Engine
from tests.support import KEYS, auth


def test_metrics_count_routes_decisions_and_index(client: TestClient) -> None:
    client.post("/v1/suggest", json={"title": "Camera records to microSD card"})
    client.post("/v1/suggest", json={"title": "zzqx vvwy"})
    client.post("/v1/feedback", json={"request_id": "0" * 32, "thread_id": "t1", "helpful": True})
    text = client.get("/metrics", headers=auth("agent")).text
    assert 'unsource_suggest_decisions_total{decision="suggest"} 1.0' in text
    assert 'unsource_suggest_decisions_total{decision="no_match"} 1.0' in text
    assert "unsource_index_threads 4.0" in text
    assert (
        'unsource_request_seconds_count{method="POST",route="/v1/suggest",status="200"} 2.0' in text
    )
    assert 'route="/v1/feedback",status="404"' in text  # included-router routes by template


def test_readyz_reports_each_check(client: TestClient, loaded: Engine) -> None:
    r = client.get("/readyz", headers={"X-API-Key": ""})
    assert r.status_code == 200 and r.json()["status"] == "ready"
    assert set(r.json()["checks"]) == {"encoder", "triage", "store", "activity", "index"}
    assert r.json()["fast_scan"] == "off"  # a small flat index needs no fast-scan codes
    assert r.json()["warm_up"] in ("running", "done")
    assert loaded.warmed.wait(timeout=30)  # the start-up job ends, and says so
    assert client.get("/readyz").json()["warm_up"] == "done"
    with loaded.corpus.lock:  # the index lost a vector the store still has
        loaded.corpus.index.remove([int(loaded.corpus.index.ids()[0])])
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["index"] is False
    assert r.json()["indexed"] == r.json()["threads"] - 1


def test_every_response_has_a_request_id(client: TestClient) -> None:
    ids = {client.get("/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3 and all(len(i) == 32 for i in ids)
    assert client.post("/v1/suggest", json={"title": ""}).headers["x-request-id"]


def test_logs_are_json_and_redacted() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    try:
        log = logging.getLogger("unsource.test")
        log.info("question from %s about card %s", "ana@example.com", "4111 1111 1111 1111")
        log.warning("refund to IBAN DE89 3704 0044 0532 0130 00 please")
        try:
            raise ValueError("bad phone +44 20 7946 0958")
        except ValueError:
            log.exception("failed", extra={"who": "bob@example.net"})
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["level"] for r in lines] == ["INFO", "WARNING", "ERROR"]
    assert "ValueError" in lines[2]["exc_info"]
    text = stream.getvalue()
    raws = ("ana@example.com", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00",
            "+44 20 7946 0958", "bob@example.net")  # fmt: skip
    for raw in raws:
        assert raw not in text
    assert all({"time", "logger", "message", "request_id"} <= set(r) for r in lines)


def test_widget_and_demo_page(settings: Settings, loaded: Engine) -> None:
    keyed = settings.model_copy(update={"demo_key": KEYS["public"]})
    with TestClient(create_app(keyed, engine=loaded)) as c:
        js = c.get("/widget.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert "/v1/suggest" in js.text and "textContent" in js.text and "innerHTML" not in js.text
        page = c.get("/demo").text
        assert 'src="/widget.js"' in page and f'data-key="{KEYS["public"]}"' in page
    with TestClient(create_app(settings, engine=loaded)) as c:
        assert "data-key" not in c.get("/demo").text.split("<script")[1]


def test_openapi_documents_security_and_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert {"APIKeyHeader", "HTTPBearer"} <= set(schemes)
    schemas = spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if not path.startswith("/v1/"):
                continue
            has_example = any(
                "example" in content or "examples" in content
                for resp in op["responses"].values()
                for content in resp.get("content", {}).values()
            )
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            ref = body.get("schema", {}).get("$ref", "")
            if ref:
                has_example |= "examples" in schemas[ref.rsplit("/", 1)[1]]
            has_example |= any(
                "examples" in p or "examples" in p.get("schema", {})
                for p in op.get("parameters", [])
            )
            assert has_example, f"{method.upper()} {path} has no example"
            assert op.get("security"), f"{method.upper()} {path} declares no security"


def test_vectors_untouched_by_feedback(client: TestClient, loaded: Engine) -> None:
    before = loaded.corpus.index.vectors_for([1])[1].copy()
    r = client.post("/v1/suggest", json={"title": "Camera records to microSD card"})
    tid = r.json()["suggestions"][0]["thread_id"]
    vote = {"request_id": r.json()["request_id"], "thread_id": tid, "helpful": True}
    assert client.post("/v1/feedback", json=vote).status_code == 200
    assert client.post("/v1/feedback", json={**vote, "helpful": 1}).status_code == 422
    assert np.array_equal(before, loaded.corpus.index.vectors_for([1])[1])


def test_made_up_methods_do_not_grow_the_metrics(client: TestClient) -> None:
    """Audit finding 4: each made-up method became a new label set, never freed."""
    for i in range(50):
        client.request(f"X{i}{'Y' * 2000}", "/v1/suggest")
    text = client.get("/metrics", headers=auth("agent")).text
    assert "XY" not in text and "X1Y" not in text
    assert 'method="other"' in text
    assert len(text) < 200_000


def test_pii_after_escaped_characters_is_redacted_and_lines_stay_json() -> None:
    """Audit finding 12: redacting the encoded line missed PII after \\n, \\t or U+00A0
    (escaped as \\n, \\t, \\u00a0) and could break the JSON."""
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    try:
        log = logging.getLogger("unsource.test")
        for sep in ("\n", "\t", "\u00a0", '"', "\\"):
            log.info("x%sana@example.com%s4111 1111 1111 1111", sep, sep)
            log.info("y", extra={"who": f"a{sep}bob@example.net", "nested": {"k": f"{sep}c@d.io"}})
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 10
    decoded = json.dumps(lines, ensure_ascii=False)
    for raw in ("ana@example.com", "4111 1111 1111 1111", "bob@example.net", "c@d.io"):
        assert raw not in decoded


def test_pages_send_security_headers_and_load_no_third_party_script(client: TestClient) -> None:
    """Security N14: /console sent no CSP, framing or sniffing headers, and /docs loaded
    Swagger UI from a CDN on the origin whose sessionStorage holds the agent key."""
    console = client.get("/console")
    policy = console.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
    assert "<script>" not in console.text  # no inline script: the policy allows none
    for path in ("/console", "/docs", "/redoc", "/demo", "/healthz", "/v1/nothing-here"):
        r = client.get(path)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "no-referrer", path
        assert r.headers["x-frame-options"] == "DENY", path
    for path in ("/docs", "/redoc"):
        page = client.get(path)
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        sources = re.findall(r"""(?:src|href)=["']?([^"' >]+)""", page.text)
        assert sources and all(src.startswith(("/", "data:")) for src in sources), sources
        for src in sources:
            assert client.get(src).status_code == 200, src
    assert "unsafe-inline" not in client.get("/healthz").headers.get("content-security-policy", "")


def test_api_docs_can_be_turned_off(settings: Settings, loaded: Engine) -> None:
    """/docs and /redoc can be switched off (/openapi.json stays)."""
    off = settings.model_copy(update={"api_docs": False})
    with TestClient(create_app(off, engine=loaded)) as c:
        assert c.get("/docs").status_code == 404 and c.get("/redoc").status_code == 404
        assert c.get("/openapi.json").status_code == 200
