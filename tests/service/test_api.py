import pytest
from fastapi.testclient import TestClient

from service.runtime import Engine


def _fields(resp) -> list[str]:  # type: ignore[no-untyped-def]
    return [d["field"] for d in resp.json()["detail"]]


def test_suggest_returns_matching_thread(client: TestClient) -> None:
    r = client.post("/v1/suggest", json={"title": "Camera records to microSD card", "k": 2})
    assert r.status_code == 200
    body = r.json()
    assert body["decision"] == "suggest"
    top = body["suggestions"][0]
    assert top["thread_id"] == "t3" and top["answer_excerpt"] == "Yes, up to 256 GB"
    assert set(top) >= {"thread_id", "title", "answer_excerpt", "url", "score", "similarity"}


def test_suggest_no_match(client: TestClient) -> None:
    r = client.post("/v1/suggest", json={"title": "zzqx vvwy"})
    assert r.status_code == 200 and r.json()["decision"] == "no_match"
    assert r.json()["suggestions"] == []


def test_thread_crud_and_immediate_visibility(client: TestClient) -> None:
    new = {"title": "Leak sensor placement", "body": "where?", "answer": "On the floor"}
    r = client.put("/v1/threads/leak-1", json=new)
    assert r.status_code == 201 and r.json() == {"id": "leak-1", "result": "created"}
    r = client.put("/v1/threads/leak-1", json=new)
    assert r.status_code == 200 and r.json()["result"] == "unchanged_text"
    assert client.get("/v1/threads/leak-1").json()["answer"] == "On the floor"
    hits = client.post("/v1/suggest", json={"title": "Leak sensor placement"}).json()
    assert hits["suggestions"][0]["thread_id"] == "leak-1"
    assert client.delete("/v1/threads/leak-1").status_code == 204
    assert client.get("/v1/threads/leak-1").status_code == 404
    assert client.delete("/v1/threads/leak-1").status_code == 404
    hits = client.post("/v1/suggest", json={"title": "Leak sensor placement", "k": 50}).json()
    assert "leak-1" not in {s["thread_id"] for s in hits["suggestions"]}


def test_bulk_upsert(client: TestClient) -> None:
    threads = [{"id": f"b{i}", "title": f"Bulk thread {i} about plugs"} for i in range(5)]
    r = client.post("/v1/threads:bulk", json={"threads": threads})
    assert r.status_code == 200
    assert r.json() == {"created": 5, "updated": 0, "unchanged_text": 0, "count": 9}
    assert client.get("/healthz").json()["threads"] == 9


def test_validation_errors_name_the_field(client: TestClient) -> None:
    cases = [
        ({"title": ""}, "title"),
        ({"body": "no title"}, "title"),
        ({"title": "x", "k": 51}, "k"),
        ({"title": "x", "k": 0}, "k"),
        ({"title": "x", "surprise": 1}, "surprise"),
        ({"title": "x" * 501}, "title"),
        ({"title": "x", "language": "English!"}, "language"),
    ]
    for payload, field in cases:
        r = client.post("/v1/suggest", json=payload)
        assert r.status_code == 422, payload
        assert field in _fields(r), (payload, r.json())


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("after=q1&after=q2", ["after"]),
        (
            "limit=5&limit=6&after=q1&include_open=true&include_open=false",
            ["limit", "include_open"],
        ),
    ],
)
def test_a_query_parameter_given_twice_is_422_naming_it(
    client: TestClient, query: str, fields: list[str]
) -> None:
    r = client.get(f"/v1/escalations?{query}")
    assert r.status_code == 422, r.text
    assert _fields(r) == fields
    assert all("given 2 times" in d["message"] for d in r.json()["detail"])
    assert client.get("/v1/escalations?limit=5&include_open=true").status_code == 200


def test_malformed_json_is_422(client: TestClient) -> None:
    r = client.post(
        "/v1/suggest", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["error"] == "validation_error"


def test_bad_thread_writes_change_nothing(client: TestClient) -> None:
    before = client.get("/healthz").json()["threads"]
    r = client.put("/v1/threads/bad%20id", json={"title": "x"})
    assert r.status_code == 422 and "thread_id" in _fields(r)
    r = client.put("/v1/threads/ok", json={"title": "x", "answer_votes": "many"})
    assert r.status_code == 422 and "answer_votes" in _fields(r)
    r = client.post(
        "/v1/threads:bulk", json={"threads": [{"id": "n1", "title": "ok"}, {"id": "n2"}]}
    )
    assert r.status_code == 422 and "threads.1.title" in _fields(r)
    dup = [{"id": "d", "title": "a"}, {"id": "d", "title": "b"}]
    r = client.post("/v1/threads:bulk", json={"threads": dup})
    assert r.status_code == 422 and any("id" in f for f in _fields(r))
    too_many = [{"id": f"m{i}", "title": "t"} for i in range(1001)]
    r = client.post("/v1/threads:bulk", json={"threads": too_many})
    assert r.status_code == 422 and "threads" in _fields(r)
    assert client.get("/healthz").json()["threads"] == before
    assert client.get("/v1/threads/n1").status_code == 404


def test_openapi_lists_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/v1/suggest", "/v1/threads/{thread_id}", "/v1/threads:bulk", "/healthz"):
        assert p in paths


CARD = "4111 1111 1111 1111"


def test_triage_endpoint_routes_and_redacts(client: TestClient) -> None:
    r = client.post("/v1/triage", json={"text": f"Pay with {CARD} please"})
    assert r.status_code == 200
    body = r.json()
    assert body["route"] == "staff" and body["queue"] == "security"
    assert (body["reasons"][0]["kind"], body["reasons"][0]["label"]) == ("pii", "card")
    assert CARD not in r.text and CARD.replace(" ", "") not in r.text
    assert "[CARD]" in body["redacted_text"]
    community = client.post("/v1/triage", json={"text": "How do I reset my hub?"}).json()
    assert community["route"] == "community" and community["queue"] is None
    assert community["evidence"] and 0 <= community["confidence"] <= 1


def test_triage_validation(client: TestClient) -> None:
    r = client.post("/v1/triage", json={"text": "   "})
    assert r.status_code == 422 and _fields(r) == ["text"]
    r = client.post("/v1/triage", json={"text": "x", "extra": 1})
    assert r.status_code == 422 and _fields(r) == ["extra"]


def test_suggest_sends_confidential_questions_to_staff(client: TestClient) -> None:
    r = client.post(
        "/v1/suggest", json={"title": "Camera records to microSD card", "body": f"card {CARD}"}
    )
    body = r.json()
    assert r.status_code == 200 and body["decision"] == "staff"
    assert body["queue"] == "security" and body["suggestions"] == []
    assert body["reasons"][0]["kind"] == "pii" and CARD not in r.text
    billing = client.post("/v1/suggest", json={"title": "Why was I charged twice on my bill?"})
    assert billing.json()["decision"] == "staff" and billing.json()["queue"] == "billing"


def test_threads_are_stored_redacted(client: TestClient, loaded) -> None:  # type: ignore[no-untyped-def]
    iban, email = "DE89 3704 0044 0532 0130 00", "ana.silva@example.com"
    thread = {"title": "Hub offline", "body": f"mail {email}", "answer": f"IBAN {iban}, {CARD}"}
    assert client.put("/v1/threads/pii-1", json=thread).status_code == 201
    got = client.get("/v1/threads/pii-1").json()
    assert got["body"] == "mail [EMAIL]" and got["answer"] == "IBAN [IBAN], [CARD]"
    loaded.store.close()  # checkpoint the WAL so the bytes are all in the main file
    raw = loaded.settings.database_path.read_bytes()
    for secret in (iban, email, CARD, CARD.replace(" ", ""), iban.replace(" ", "")):
        assert secret.encode() not in raw


def test_nul_in_thread_text_is_422_naming_the_field(client: TestClient) -> None:
    """Audit finding 16: on PostgreSQL a NUL answered 503; refused before any store."""
    for field, value in (("body", "a\u0000b"), ("answer", "\u0000"), ("tags", ["x\u0000"])):
        r = client.put("/v1/threads/nul-1", json={"title": "Hub reset", field: value})
        assert r.status_code == 422, field
        assert r.json()["detail"][0]["field"].startswith(field)
    assert client.get("/v1/threads/nul-1").status_code == 404


def test_pii_in_url_tags_and_ids_never_reaches_a_public_response(client: TestClient) -> None:
    """Audit finding 13: url, tags and ids were stored and returned raw."""
    r = client.put(
        "/v1/threads/pii-1",
        json={
            "title": "Camera records to microSD card",
            "url": "https://forum.example/t/1?from=ana@example.com",
            "tags": ["card 4111 1111 1111 1111", "camera"],
        },
    )
    assert r.status_code == 201
    stored = client.get("/v1/threads/pii-1").json()
    assert "ana@example.com" not in stored["url"] and "[EMAIL]" in stored["url"]
    assert all("4111" not in t for t in stored["tags"])
    found = client.post("/v1/suggest", json={"title": "Camera records to microSD card"})
    assert "ana@example.com" not in found.text and "4111 1111" not in found.text
    r = client.put("/v1/threads/user.ana@example.com", json={"title": "x"})
    assert r.status_code == 422
    r = client.put("/v1/threads/c-4111111111111111", json={"title": "x"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"].endswith("id")


def test_a_nul_in_a_question_is_refused_by_field(client: TestClient) -> None:
    """Security finding N11: a NUL reached the suggest log (PostgreSQL: 503)."""
    for path, body, field in (
        ("/v1/suggest", {"title": "charged twice \u0000"}, "title"),
        ("/v1/suggest", {"title": "charged twice", "body": "a\u0000b"}, "body"),
        ("/v1/triage", {"text": "my card \u0000"}, "text"),
    ):
        r = client.post(path, json=body)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, r.text


def test_a_503_names_what_failed_but_not_the_drivers_text(
    client: TestClient, loaded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Security finding N10: the driver's message (host, port) reached 503 bodies."""
    from index.errors import StoreError

    def down(*_: object, **__: object) -> None:
        raise StoreError(
            'thread store unavailable: connection to server at "10.1.2.3", port 5432 failed'
        )

    monkeypatch.setattr(loaded.corpus, "count_at_generation", down)
    r = client.get("/readyz")
    assert r.status_code == 503
    message = r.json()["detail"][0]["message"]
    assert message == "thread store unavailable; retry later" and "10.1.2.3" not in r.text


def test_lengths_are_checked_before_whitespace_is_stripped(client: TestClient) -> None:
    """The schema fuzzer's find: 501 characters with a leading space passed max_length 500."""
    r = client.post("/v1/suggest", json={"title": " " + "a" * 500})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "title", r.text
    r = client.put("/v1/threads/t-long", json={"title": "\f" + "a" * 500})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "title", r.text
    # and list items: a tag of 51 characters, one of them a leading CR (found in CI)
    bulk = {"threads": [{"id": "t-tag", "title": "t", "tags": ["\r" + "a" * 50]}]}
    r = client.post("/v1/threads:bulk", json=bulk)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "threads.0.tags.0", r.text
    r = client.post("/v1/suggest", json={"title": "reset", "tags": [" " + "a" * 50]})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "tags.0", r.text
    assert client.post("/v1/suggest", json={"title": "  reset the hub  "}).status_code == 200
