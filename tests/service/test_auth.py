"""Every route of the app, tried without a key, with a bad key and with each role."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Route
from typer.testing import CliRunner

from service.api.app import create_app
from service.api.auth import EXAMPLE_KEYS, RANK, ApiKey, Keyring, digest
from service.cli.root import app as cli
from service.config import ConfigError, Settings
from service.runtime import Engine
from tests.support import KEYS, auth

OPEN = None
# (method, path) -> least role allowed; None: no key needed
ROUTES: dict[tuple[str, str], str | None] = {
    ("POST", "/v1/suggest"): "public",
    ("POST", "/v1/feedback"): "public",
    ("POST", "/v1/triage"): "agent",
    ("GET", "/v1/threads/{thread_id}"): "agent",
    ("POST", "/v1/questions"): "agent",
    ("POST", "/v1/questions/{question_id}/answered"): "agent",
    ("GET", "/v1/questions/{question_id}"): "agent",
    ("GET", "/v1/questions/{question_id}/experts"): "agent",
    ("GET", "/v1/escalations"): "agent",
    ("GET", "/v1/stats"): "agent",
    ("GET", "/v1/community/leaders"): "public",
    ("GET", "/v1/insights/gaps"): "agent",
    ("GET", "/v1/insights/daily"): "agent",
    ("GET", "/v1/insights/languages"): "agent",
    ("GET", "/metrics"): "agent",
    ("PUT", "/v1/threads/{thread_id}"): "admin",
    ("POST", "/v1/threads:bulk"): "admin",
    ("DELETE", "/v1/threads/{thread_id}"): "admin",
    ("POST", "/v1/admin/reindex"): "admin",
    ("GET", "/v1/admin/verify"): "admin",
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/widget.js"): OPEN,
    ("GET", "/demo"): OPEN,
    ("GET", "/console"): OPEN,
    ("GET", "/console.js"): OPEN,
    ("GET", "/openapi.json"): OPEN,
    ("GET", "/docs"): OPEN,
    ("GET", "/docs/oauth2-redirect"): OPEN,
    ("GET", "/redoc"): OPEN,
    ("POST", "/v1/hooks/discourse"): "signed",  # the forum's HMAC, not a key (test_hooks.py)
}
BODIES = {
    "/v1/suggest": {"title": "Reset the hub to factory settings"},
    "/v1/feedback": {"request_id": "0" * 32, "thread_id": "t1", "helpful": True},
    "/v1/triage": {"text": "How do I pair a bulb?"},
    "/v1/questions": {"id": "q-auth", "title": "Bulb will not pair"},
    "/v1/questions/{question_id}/answered": {},
    "/v1/threads/{thread_id}": {"title": "A thread written by the auth test"},
    "/v1/threads:bulk": {"threads": [{"id": "bulk-auth", "title": "Bulk thread"}]},
}


def _flatten(routes: list[Any]) -> list[Route]:
    """The app's routes, including those of included routers (no prefixes are used)."""
    out: list[Route] = []
    for route in routes:
        if isinstance(route, Route):
            out.append(route)
        elif hasattr(route, "original_router"):
            out.extend(_flatten(route.original_router.routes))
    return out


def _routes(client: TestClient) -> dict[tuple[str, str], Route]:
    out = {}
    for route in _flatten(client.app.routes):  # type: ignore[attr-defined]
        for method in route.methods or ():
            if method != "HEAD":
                out[(method, route.path)] = route
    return out


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> int:
    url = path.replace("{thread_id}", "t-missing").replace("{question_id}", "q-missing")
    body = BODIES.get(path) if method in ("POST", "PUT") else None
    return client.request(method, url, json=body, headers=headers).status_code


def test_route_table_covers_the_app(client: TestClient) -> None:
    assert set(_routes(client)) == set(ROUTES)
    # every protected route declares the auth responses in its OpenAPI entry
    for (method, path), route in _routes(client).items():
        if ROUTES[(method, path)] not in (None, "signed") and isinstance(route, APIRoute):
            assert route.include_in_schema


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES))
def test_every_route_checks_key_and_role(client: TestClient, method: str, path: str) -> None:
    needed = ROUTES[(method, path)]
    anonymous = {"X-API-Key": ""}  # overrides the client's default admin key
    no_key = _call(client, method, path, anonymous)
    bad_key = _call(client, method, path, {"X-API-Key": "uns_not_a_key"})
    bearer_bad = _call(client, method, path, {"Authorization": "Bearer uns_not_a_key"})
    if needed is None:
        assert no_key < 400 and bad_key < 400
        return
    if needed == "signed":  # no key is asked for; an unsigned delivery is never applied
        assert no_key >= 400 and bad_key >= 400 and bearer_bad >= 400
        return
    assert (no_key, bad_key, bearer_bad) == (401, 401, 401)
    for role in ("public", "agent", "admin"):
        status = _call(client, method, path, auth(role))
        if RANK[role] < RANK[needed]:
            assert status == 403, (role, status)
        else:
            assert status not in (401, 403) and status < 500, (role, status)
    bearer = {"Authorization": f"Bearer {KEYS['admin']}", "X-API-Key": ""}
    assert _call(client, method, path, bearer) not in (401, 403)


def test_401_names_the_header_and_asks_for_bearer(client: TestClient) -> None:
    r = client.post("/v1/suggest", json={"title": "x"}, headers={"X-API-Key": ""})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"] == "unauthorized" and r.json()["detail"][0]["field"] == "X-API-Key"
    r = client.post("/v1/triage", json={"text": "x"}, headers=auth("public"))
    assert r.status_code == 403 and "needs 'agent'" in r.json()["detail"][0]["message"]


def test_keyring_matches_only_configured_digests() -> None:
    ring = Keyring([ApiKey(name="w", role="public", sha256=digest("uns_right"))])
    principal = ring.identify("uns_right")
    assert principal is not None and principal.role == "public" and principal.name == "w"
    assert ring.identify("uns_wrong") is None and ring.identify("") is None
    assert principal.allows("public") and not principal.allows("agent")


def test_settings_refuse_to_serve_insecurely(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="api_keys"):
        Settings(data_dir=tmp_path).check_serving()
    example = [ApiKey(name="copied", role="admin", sha256=digest(EXAMPLE_KEYS[2]))]
    with pytest.raises(ConfigError, match="example key"):
        Settings(data_dir=tmp_path, api_keys=example).check_serving()
    with pytest.raises(ConfigError, match="loopback"):
        Settings(data_dir=tmp_path, dev_mode=True, host="0.0.0.0").check_serving()
    Settings(data_dir=tmp_path, dev_mode=True).check_serving()  # loopback dev mode is fine


def test_dev_mode_lets_keyless_requests_act_as_admin(settings: Settings, loaded: Engine) -> None:
    dev = settings.model_copy(update={"dev_mode": True})
    with TestClient(create_app(dev, engine=loaded), base_url="http://127.0.0.1:8000") as c:
        assert c.put("/v1/threads/dev-1", json={"title": "Dev thread"}).status_code == 201
        # a key that is presented is still checked
        bad = c.post("/v1/suggest", json={"title": "x"}, headers={"X-API-Key": "uns_bad"})
        assert bad.status_code == 401


def test_cli_serve_refuses_without_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNSOURCE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("UNSOURCE_API_KEYS", raising=False)
    r = CliRunner().invoke(cli, ["serve", "--port", "9"])
    assert r.exit_code == 2 and "api_keys" in r.output


def test_keys_create_prints_a_key_and_its_digest() -> None:
    import json

    r = CliRunner().invoke(cli, ["keys", "create", "--role", "public", "--name", "w", "--json"])
    assert r.exit_code == 0, r.output
    entry = json.loads(r.output)
    assert entry["key"].startswith("uns_") and len(entry["key"]) > 40
    assert entry["sha256"] == digest(entry["key"])
    assert ApiKey.model_validate({k: entry[k] for k in ("name", "role", "sha256")}).role == "public"
    bad = CliRunner().invoke(cli, ["keys", "create", "--role", "root"])
    assert bad.exit_code == 2


def test_dev_mode_refuses_rebinding_hosts_and_cross_site_writes(
    settings: Settings, loaded: Engine
) -> None:
    """Audit finding 14: any Host and body-less cross-site POSTs could act as admin."""
    dev = settings.model_copy(update={"dev_mode": True})
    with TestClient(create_app(dev, engine=loaded), base_url="http://localhost:8000") as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/healthz", headers={"Host": "attacker.example:8000"})
        assert r.status_code == 403 and r.json()["detail"][0]["field"] == "Host"
        r = c.post("/v1/admin/reindex", headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and r.json()["detail"][0]["field"] == "Origin"
        r = c.post("/v1/admin/reindex", headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403
        # round-2 finding 14's residue: another local app (any other port) is another site
        for other in ({"Origin": "http://localhost:3000"}, {"Origin": "http://127.0.0.1:8000"},
                      {"Origin": "null"}, {"Sec-Fetch-Site": "same-site"}):  # fmt: skip
            r = c.post("/v1/admin/reindex", headers=other)
            assert r.status_code == 403, other
        same = {"Origin": "http://localhost:8000", "Sec-Fetch-Site": "same-origin"}
        assert c.put("/v1/threads/dev-2", json={"title": "Mine"}, headers=same).status_code == 201
        assert c.get("/healthz", headers={"Host": "[::1]:8000"}).status_code == 200
