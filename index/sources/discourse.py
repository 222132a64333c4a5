"""Discourse forums through their documented REST API (docs.discourse.org).

``DiscourseClient`` reads categories (``GET /categories.json``), the topic list
(``GET /latest.json?page=N``) and each topic (``GET /t/{id}.json``) with an API key sent
in headers (``Api-Key``, ``Api-Username``), never in the URL; a 429 is waited out as its
``Retry-After`` says. ``topic_thread`` turns a topic into a thread: the title, the first
post as the body (cooked HTML to text), the accepted answer of the Solved plugin
(``accepted_answer`` on the post, or the topic's ``accepted_answer.post_number``) or else
the most-liked reply as the answer, its author and likes, the tags and category, the
canonical URL and the dates. Personal messages and topics of read-restricted (private)
categories are never turned into threads (``skip_reason``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from index.errors import UnsourceError
from index.models import MAX_ANSWER, MAX_BODY, MAX_TAGS, MAX_TITLE, Thread
from index.sources.html_text import html_to_text

LIKE = 2  # the post action type id of a like (actions_summary)
MAX_WAIT = 120.0  # the longest Retry-After honoured, seconds


class DiscourseError(UnsourceError):
    """The forum cannot be read: not a Discourse, a refused key, too many 429s."""


@dataclass(frozen=True)
class Category:
    id: int
    slug: str
    private: bool  # read_restricted: only some groups may read it


class DiscourseClient:
    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        api_username: str | None = None,
        transport: httpx.BaseTransport | None = None,
        retries: int = 5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Api-Key"] = api_key
            headers["Api-Username"] = api_username or "system"
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url, headers=headers, timeout=30.0, transport=transport
        )
        self.retries = retries
        self.sleep = sleep
        self.waited = 0.0  # seconds spent honouring Retry-After
        self.throttled = 0  # HTTP 429 answers

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> DiscourseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        for _ in range(self.retries + 1):
            try:
                r = self.http.get(path, params=params or None)
            except httpx.HTTPError as exc:
                raise DiscourseError(f"--url: cannot reach {self.url}: {exc}") from exc
            if r.status_code == 429:
                wait = _retry_after(r.headers.get("Retry-After"))
                self.waited += wait
                self.throttled += 1
                self.sleep(wait)
                continue
            if r.status_code in (401, 403):
                raise DiscourseError(
                    f"--api-key: {self.url} refused the key (HTTP {r.status_code} on {path})"
                )
            if r.status_code == 404:
                raise LookupError(path)
            if r.status_code >= 400:
                raise DiscourseError(f"{self.url}{path}: HTTP {r.status_code}")
            try:
                body = r.json()
            except ValueError as exc:
                raise DiscourseError(
                    f"--url: {self.url} is not a Discourse forum ({path})"
                ) from exc
            if not isinstance(body, dict):
                raise DiscourseError(f"--url: {self.url} is not a Discourse forum ({path})")
            return body
        raise DiscourseError(f"{self.url}{path}: still HTTP 429 after {self.retries} retries")

    def _listing(self, path: str, **params: Any) -> dict[str, Any]:
        try:
            return self.get(path, **params)
        except LookupError as exc:
            raise DiscourseError(
                f"--url: {self.url} is not a Discourse forum ({path}: 404)"
            ) from exc

    def categories(self) -> dict[int, Category]:
        body = self._listing("/categories.json", include_subcategories="true")
        try:
            rows = body["category_list"]["categories"]
        except (KeyError, TypeError) as exc:
            raise DiscourseError(f"--url: {self.url} is not a Discourse forum") from exc
        out: dict[int, Category] = {}
        for c in rows:
            for cat in [c, *c.get("subcategory_list", [])]:
                out[int(cat["id"])] = Category(
                    int(cat["id"]), str(cat["slug"]), bool(cat.get("read_restricted"))
                )
        return out

    def latest(self, page: int) -> tuple[list[dict[str, Any]], bool]:
        """One page of the topic list, and whether there is another."""
        body = self._listing("/latest.json", page=page)
        try:
            topics = list(body["topic_list"]["topics"])
        except (KeyError, TypeError) as exc:
            raise DiscourseError(f"--url: {self.url} is not a Discourse forum") from exc
        return topics, bool(body["topic_list"].get("more_topics_url")) and bool(topics)

    def topic(self, topic_id: int) -> dict[str, Any] | None:
        """A topic with its first posts; None if it is gone (deleted, or hidden from us)."""
        try:
            return self.get(f"/t/{int(topic_id)}.json")
        except LookupError:
            return None


def _retry_after(value: str | None) -> float:
    try:
        return min(max(float(value or 5), 0.0), MAX_WAIT)
    except ValueError:
        return 5.0


def _likes(post: dict[str, Any]) -> int:
    for action in post.get("actions_summary") or []:
        if action.get("id") == LIKE:
            return int(action.get("count") or 0)
    return int(post.get("like_count") or 0)


def skip_reason(topic: dict[str, Any], categories: dict[int, Category]) -> str | None:
    """Why a topic (from the list or in full) is not a thread, or None."""
    if topic.get("archetype") not in (None, "regular"):
        return "personal message"
    category = categories.get(int(topic.get("category_id") or 0))
    if category is not None and category.private:
        return "private category"
    if topic.get("deleted_at"):
        return "deleted"
    if topic.get("visible") is False:
        return "unlisted"
    return None


def answer_post(topic: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """(the post that answers the topic, accepted?): the Solved plugin's accepted answer,
    else the most-liked reply (ties: the earliest); None when there is no reply."""
    posts = [p for p in topic.get("post_stream", {}).get("posts", []) if p.get("post_number")]
    replies = [p for p in posts if p["post_number"] > 1 and not p.get("hidden")]
    accepted_no = (topic.get("accepted_answer") or {}).get("post_number")
    for p in replies:
        if p.get("accepted_answer") or (accepted_no and p["post_number"] == accepted_no):
            return p, True
    if not replies:
        return None, False
    return max(replies, key=lambda p: (_likes(p), -p["post_number"])), False


def topic_thread(
    topic: dict[str, Any],
    base_url: str,
    prefix: str = "discourse-",
    category: str | None = None,
) -> Thread | None:
    """The thread a topic becomes, or None when it has no reply to offer as an answer;
    its category (slug) is kept as one more tag."""
    posts = topic.get("post_stream", {}).get("posts", [])
    first = next((p for p in posts if p.get("post_number") == 1), None)
    answer, accepted = answer_post(topic)
    text = html_to_text(answer.get("cooked", "")) if answer else ""
    if answer is None or not text or not str(topic.get("title", "")).strip():
        return None
    tags = [t["name"] if isinstance(t, dict) else str(t) for t in topic.get("tags") or []]
    if category:
        tags.append(category)
    slug = topic.get("slug") or "topic"
    return Thread.model_validate(
        {
            "id": f"{prefix}{int(topic['id'])}",
            "title": " ".join(str(topic["title"]).split())[:MAX_TITLE],
            "body": html_to_text(first.get("cooked", "") if first else "")[:MAX_BODY],
            "answer": text[:MAX_ANSWER],
            "answer_votes": min(_likes(answer), 1_000_000),
            "accepted": accepted,
            "answer_author": (answer.get("username") or "")[:128] or None,
            "tags": [t.strip()[:50] for t in tags if t.strip()][:MAX_TAGS],
            "url": f"{base_url.rstrip('/')}/t/{slug}/{int(topic['id'])}",
            "created_at": topic.get("created_at"),
            "updated_at": topic.get("last_posted_at") or topic.get("created_at"),
        }
    )


@dataclass
class Seen:
    """One topic of the crawl: its thread, or why it is not one (``remove``: a thread that
    may exist from an earlier import and must go)."""

    topic_id: int
    thread: Thread | None = None
    skipped: str | None = None
    remove: bool = False


def crawl(
    client: DiscourseClient,
    categories: dict[int, Category],
    start_page: int = 0,
    since: str | None = None,
    category: str | None = None,
    prefix: str = "discourse-",
) -> Iterator[tuple[int, list[Seen]]]:
    """(page, what each of its topics is), page by page from ``start_page``. The list is
    in bump order, newest first: with ``since`` (ISO time) the crawl stops at the first
    topic last bumped before it. ``category``: only that category's topics (by slug)."""
    page = start_page
    while True:
        topics, more = client.latest(page)
        seen: list[Seen] = []
        stop = False
        for listed in topics:
            if since and str(listed.get("bumped_at") or listed.get("created_at") or "") < since:
                stop = True
                break
            cat = categories.get(int(listed.get("category_id") or 0))
            if category and (cat is None or cat.slug != category):
                continue
            seen.append(_one(client, categories, listed, prefix))
        yield page, seen
        if stop or not more:
            return
        page += 1


def _one(
    client: DiscourseClient, categories: dict[int, Category], listed: dict[str, Any], prefix: str
) -> Seen:
    topic_id = int(listed["id"])
    reason = skip_reason(listed, categories)
    if reason is not None:
        return Seen(topic_id, skipped=reason, remove=True)
    topic = client.topic(topic_id)
    if topic is None:
        return Seen(topic_id, skipped="deleted", remove=True)
    reason = skip_reason(topic, categories)
    if reason is not None:
        return Seen(topic_id, skipped=reason, remove=True)
    cat = categories.get(int(topic.get("category_id") or 0))
    thread = topic_thread(topic, client.url, prefix, cat.slug if cat else None)
    if thread is None:
        return Seen(topic_id, skipped="no reply yet")
    return Seen(topic_id, thread=thread)
