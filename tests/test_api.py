from fastapi.testclient import TestClient


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
