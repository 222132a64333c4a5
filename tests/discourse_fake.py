"""A local fake Discourse for the import tests: a real HTTP server (uvicorn, in a thread)
answering ``GET /categories.json``, ``/latest.json`` and ``/t/{id}.json``. Every response
is built from Discourse's published OpenAPI document (tests/data/discourse/
openapi-subset.json, from discourse/discourse_api_docs, MIT) and validated against it
before it is sent: a response that drifts from the spec fails the test with a 500.

Two kinds of fields are removed for validation only, because the core document forbids
unknown properties: the Solved plugin's (``accepted_answer`` on a post and on the topic,
``PLUGIN_FIELDS``), and the like count of ``actions_summary`` entries, which Discourse
sends (``{"id": 2, "count": 3, "can_act": true}``) but the document does not describe.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema_rs
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from eval.launcher import free_port

SPEC = json.loads(
    (Path(__file__).parent / "data" / "discourse" / "openapi-subset.json").read_text()
)
PLUGIN_FIELDS = {"accepted_answer", "can_accept_answer", "can_unaccept_answer"}
PER_PAGE = 2


def _schema(path: str) -> dict[str, Any]:
    op = SPEC["paths"][path]["get"]
    return dict(op["responses"]["200"]["content"]["application/json"]["schema"])


def minimal(schema: dict[str, Any]) -> Any:
    """The smallest instance of ``schema``: every required property, nothing else."""
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "null" in kinds:
        return None
    if "object" in kinds or (kind is None and "properties" in schema):
        props = schema.get("properties", {})
        return {name: minimal(props.get(name, {})) for name in schema.get("required", [])}
    if "array" in kinds:
        return []
    if "integer" in kinds or "number" in kinds:
        return 0
    if "boolean" in kinds:
        return False
    return ""


def _sub(schema: dict[str, Any], *path: str) -> dict[str, Any]:
    for key in path:
        schema = schema["properties"][key] if key != "[]" else schema["items"]
    return schema


def _core(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _core(v) for k, v in value.items() if k not in PLUGIN_FIELDS}
        if isinstance(out.get("actions_summary"), list):
            out["actions_summary"] = [
                {k: v for k, v in a.items() if k != "count"} for a in out["actions_summary"]
            ]
        return out
    if isinstance(value, list):
        return [_core(v) for v in value]
    return value


def validated(path: str, body: dict[str, Any]) -> dict[str, Any]:
    errors = [str(e) for e in jsonschema_rs.validator_for(_schema(path)).iter_errors(_core(body))]
    if errors:
        raise AssertionError(f"fake response for {path} is not Discourse's: {errors[:3]}")
    return body


@dataclass
class Post:
    username: str
    html: str
    likes: int = 0
    accepted: bool = False


@dataclass
class Topic:
    id: int
    title: str
    category_id: int
    posts: list[Post]
    tags: list[str] = field(default_factory=list)
    visible: bool = True
    deleted: bool = False
    archetype: str = "regular"
    bumped_at: str = "2026-12-01T10:00:00.000Z"


@dataclass
class Forum:
    categories: list[tuple[int, str, bool]]  # id, slug, read_restricted
    topics: list[Topic]  # in bump order, newest first
    api_key: str | None = None
    rate_limited: set[str] = field(default_factory=set)  # paths that get one 429 first
    broken: set[int] = field(default_factory=set)  # topics that answer HTTP 500
    requests: list[str] = field(default_factory=list)

    def category_list(self) -> dict[str, Any]:
        schema = _schema("/categories.json")
        item = _sub(schema, "category_list", "categories", "[]")
        cats = []
        for cid, slug, private in self.categories:
            cat = minimal(item)
            cat.update(id=cid, name=slug.title(), slug=slug, read_restricted=private)
            cats.append(cat)
        body = minimal(schema)
        body["category_list"]["categories"] = cats
        return validated("/categories.json", body)

    def latest(self, page: int) -> dict[str, Any]:
        schema = _schema("/latest.json")
        item = _sub(schema, "topic_list", "topics", "[]")
        # deleted topics stay listed: the one deleted between the list and its fetch
        shown = self.topics
        chunk = shown[page * PER_PAGE : (page + 1) * PER_PAGE]
        topics = []
        for t in chunk:
            row = minimal(item)
            row.update(
                id=t.id, title=t.title, slug=f"topic-{t.id}", category_id=t.category_id,
                archetype=t.archetype, visible=t.visible, bumped_at=t.bumped_at,
                created_at=t.bumped_at, posts_count=len(t.posts),
            )  # fmt: skip
            topics.append({k: v for k, v in row.items() if k in item["properties"]})
        body = minimal(schema)
        body.setdefault("topic_list", {})
        body["topic_list"]["topics"] = topics
        if (page + 1) * PER_PAGE < len(shown):
            body["topic_list"]["more_topics_url"] = f"/latest?page={page + 1}"
        return validated("/latest.json", body)

    def topic(self, topic_id: int) -> dict[str, Any] | None:
        t = next((t for t in self.topics if t.id == topic_id), None)
        if t is None or t.deleted:
            return None
        schema = _schema("/t/{id}.json")
        post_item = _sub(schema, "post_stream", "posts", "[]")
        posts = []
        for n, p in enumerate(t.posts, start=1):
            post = minimal(post_item)
            post.update(
                id=t.id * 100 + n, username=p.username, cooked=p.html, post_number=n,
                topic_id=t.id, created_at=t.bumped_at, updated_at=t.bumped_at,
                actions_summary=[{"id": 2, "can_act": True, "count": p.likes}] if p.likes else [],
            )  # fmt: skip
            if p.accepted:
                post["accepted_answer"] = True
            posts.append(post)
        body = minimal(schema)
        body.update(
            id=t.id, title=t.title, slug=f"topic-{t.id}", category_id=t.category_id,
            tags=[{"id": n, "name": tag, "slug": tag} for n, tag in enumerate(t.tags, 1)],
            visible=t.visible, archetype=t.archetype, created_at=t.bumped_at,
            last_posted_at=t.bumped_at, posts_count=len(posts),
        )  # fmt: skip
        body["post_stream"]["posts"] = posts
        accepted = next((n for n, p in enumerate(t.posts, 1) if p.accepted), None)
        if accepted:
            body["accepted_answer"] = {"post_number": accepted, "username": "x", "excerpt": ""}
        return validated("/t/{id}.json", body)


def app_for(forum: Forum) -> FastAPI:
    app = FastAPI()

    def answer(request: Request, body: dict[str, Any] | None) -> JSONResponse:
        forum.requests.append(str(request.url.path))
        if forum.api_key and request.headers.get("Api-Key") != forum.api_key:
            return JSONResponse({"errors": ["invalid key"]}, status_code=403)
        if "api_key" in request.query_params:
            return JSONResponse({"errors": ["key in URL"]}, status_code=400)
        key = f"{request.url.path}?{request.url.query}"
        if key in forum.rate_limited:
            forum.rate_limited.discard(key)
            return JSONResponse({"errors": ["slow down"]}, 429, {"Retry-After": "0"})
        if body is None:
            return JSONResponse({"errors": ["not found"]}, status_code=404)
        return JSONResponse(body)

    @app.get("/categories.json")
    def categories(request: Request) -> JSONResponse:
        return answer(request, forum.category_list())

    @app.get("/latest.json")
    def latest(request: Request, page: int = 0) -> JSONResponse:
        return answer(request, forum.latest(page))

    @app.get("/t/{topic_id}.json")
    def topic(request: Request, topic_id: int) -> JSONResponse:
        if topic_id in forum.broken:
            return JSONResponse({"errors": ["boom"]}, status_code=500)
        return answer(request, forum.topic(topic_id))

    return app


@contextmanager
def serve(forum: Forum) -> Iterator[str]:
    """Serve ``forum`` on loopback; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app_for(forum), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)
