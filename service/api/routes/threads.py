"""Thread writes (admin) and reads (agent): ``/v1/threads/{id}``, ``/v1/threads:bulk``.
Every write is committed and searchable when it returns."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status

from index.models import MAX_ID, Thread, ThreadFields
from service.api.deps import Admin, Agent, EngineDep
from service.api.schemas import (
    ERRORS,
    BulkRequest,
    BulkResult,
    ThreadPublic,
    WriteResult,
    documented,
)

router = APIRouter()
ThreadIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_ID,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$",
        examples=["lumio-001"],
    ),
]


@router.put(
    "/v1/threads/{thread_id}",
    response_model=WriteResult,
    responses=documented() | {201: {"model": WriteResult, "description": "Created"}},
    tags=["admin"],
)
def put_thread(
    thread_id: ThreadIdPath,
    fields: ThreadFields,
    engine: EngineDep,
    response: Response,
    _: Admin,
) -> WriteResult:
    """Create or replace a thread. Committed and searchable when this returns."""
    report = engine.upsert([Thread(id=thread_id, **fields.model_dump())])
    if report.created:
        response.status_code = status.HTTP_201_CREATED
        return WriteResult(id=thread_id, result="created")
    return WriteResult(id=thread_id, result="updated" if report.updated else "unchanged_text")


@router.post("/v1/threads:bulk", response_model=BulkResult, responses=documented(), tags=["admin"])
def bulk(req: BulkRequest, engine: EngineDep, _: Admin) -> BulkResult:
    """Upsert up to 1000 threads in one transaction."""
    report = engine.upsert(req.threads)
    return BulkResult(
        created=len(report.created),
        updated=len(report.updated),
        unchanged_text=len(report.unchanged_text),
        count=engine.corpus.count(),
    )


@router.get(
    "/v1/threads/{thread_id}", response_model=ThreadPublic, responses=ERRORS, tags=["agent"]
)
def get_thread(thread_id: ThreadIdPath, engine: EngineDep, _: Agent) -> ThreadPublic:
    """A stored thread, as stored (redacted)."""
    stored = engine.corpus.get(thread_id)
    if stored is None:
        raise HTTPException(404, f"thread {thread_id!r} not found")
    return ThreadPublic.model_validate(stored.thread.model_dump())


@router.delete(
    "/v1/threads/{thread_id}",
    status_code=204,
    response_class=Response,
    responses=ERRORS,
    tags=["admin"],
)
def delete_thread(thread_id: ThreadIdPath, engine: EngineDep, _: Admin) -> Response:
    """Remove a thread from the store, keyword index and vectors."""
    if not engine.corpus.delete(thread_id):
        raise HTTPException(404, f"thread {thread_id!r} not found")
    return Response(status_code=204)
