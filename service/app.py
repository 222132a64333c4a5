"""FastAPI app: suggest, thread writes and reads, health."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from index.errors import UnsourceError, ValidationFailed
from index.models import MAX_ID, Thread, ThreadFields
from service.config import Settings
from service.runtime import Engine, build_engine
from service.schemas import (
    BulkRequest,
    BulkResult,
    ErrorBody,
    Health,
    Suggestion,
    SuggestRequest,
    SuggestResponse,
    ThreadPublic,
    TriageRequest,
    WriteResult,
    excerpt,
)
from triage.router import TriageDecision

ThreadIdPath = Annotated[
    str,
    Path(min_length=1, max_length=MAX_ID, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"),
]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Not found"},
    422: {"model": ErrorBody, "description": "Invalid input; `detail[].field` names the field"},
}


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def _error(code: int, error: str, items: list[tuple[str, str]]) -> JSONResponse:
    return JSONResponse(
        status_code=code,
        content={"error": error, "detail": [{"field": f, "message": m} for f, m in items]},
    )


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = engine or build_engine(settings)
        try:
            yield
        finally:
            app.state.engine.close()

    app = FastAPI(
        title="unsource",
        version="0.1.0",
        summary="Suggest existing community answers; route confidential questions to staff.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        items = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            if loc and loc[0] in ("body", "query", "path"):
                loc = loc[1:]
            items.append((".".join(loc) or "body", str(err.get("msg", "invalid"))))
        return _error(422, "validation_error", items)

    @app.exception_handler(ValidationFailed)
    async def _refused(_: Request, exc: ValidationFailed) -> JSONResponse:
        return _error(422, "validation_error", [(f"{loc}.{f}", m) for loc, f, m in exc.problems])

    @app.exception_handler(UnsourceError)
    async def _internal(_: Request, exc: UnsourceError) -> JSONResponse:
        return _error(503, "unavailable", [("-", str(exc))])

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", [("-", str(exc.detail))])

    @app.post("/v1/suggest", response_model=SuggestResponse, responses={422: ERRORS[422]})
    def suggest(req: SuggestRequest, engine: EngineDep) -> SuggestResponse:
        """Triage first: a confidential question gets `staff` with its queue and reasons and
        no peer suggestions. Otherwise the best existing answers, or `no_match`."""
        outcome = engine.suggest(req.title, req.body, req.k, req.tags, req.language)
        triage, result = outcome.triage, outcome.result
        return SuggestResponse(
            decision=outcome.decision,
            queue=triage.queue,
            reasons=triage.reasons,
            suggestions=[
                Suggestion(
                    thread_id=h.thread.thread.id,
                    title=h.thread.thread.title,
                    answer_excerpt=excerpt(h.thread.thread.answer),
                    url=h.thread.thread.url,
                    score=round(h.score, 6),
                    similarity=round(h.similarity, 6),
                    accepted=h.thread.thread.accepted,
                    answer_votes=h.thread.thread.answer_votes,
                )
                for h in (result.hits if result else [])
            ],
            best_similarity=None
            if result is None or result.best_similarity is None
            else round(result.best_similarity, 6),
            threshold=engine.settings.min_similarity,
        )

    @app.post("/v1/triage", response_model=TriageDecision, responses={422: ERRORS[422]})
    def triage(req: TriageRequest, engine: EngineDep) -> TriageDecision:
        """Route any text to `staff` (with a queue) or `community`, with confidence, reasons
        (PII, lexicon, classifier) and the nearest labelled examples. Fails closed: a
        classifier error or timeout routes to staff. Text comes back redacted."""
        return engine.route(req.text)

    @app.put(
        "/v1/threads/{thread_id}",
        response_model=WriteResult,
        responses={201: {"model": WriteResult, "description": "Created"}, 422: ERRORS[422]},
    )
    def put_thread(
        thread_id: ThreadIdPath, fields: ThreadFields, engine: EngineDep, response: Response
    ) -> WriteResult:
        """Create or replace a thread. Committed and searchable when this returns."""
        report = engine.upsert([Thread(id=thread_id, **fields.model_dump())])
        if report.created:
            response.status_code = status.HTTP_201_CREATED
            return WriteResult(id=thread_id, result="created")
        return WriteResult(id=thread_id, result="updated" if report.updated else "unchanged_text")

    @app.post("/v1/threads:bulk", response_model=BulkResult, responses={422: ERRORS[422]})
    def bulk(req: BulkRequest, engine: EngineDep) -> BulkResult:
        """Upsert up to 1000 threads in one transaction."""
        report = engine.upsert(req.threads)
        return BulkResult(
            created=len(report.created),
            updated=len(report.updated),
            unchanged_text=len(report.unchanged_text),
            count=engine.catalog.count(),
        )

    @app.get("/v1/threads/{thread_id}", response_model=ThreadPublic, responses=ERRORS)
    def get_thread(thread_id: ThreadIdPath, engine: EngineDep) -> ThreadPublic:
        stored = engine.catalog.get(thread_id)
        if stored is None:
            raise HTTPException(404, f"thread {thread_id!r} not found")
        return ThreadPublic.model_validate(stored.thread.model_dump())

    @app.delete(
        "/v1/threads/{thread_id}", status_code=204, response_class=Response, responses=ERRORS
    )
    def delete_thread(thread_id: ThreadIdPath, engine: EngineDep) -> Response:
        """Remove a thread from the store, keyword index and vectors."""
        if not engine.catalog.delete(thread_id):
            raise HTTPException(404, f"thread {thread_id!r} not found")
        return Response(status_code=204)

    @app.get("/healthz", response_model=Health)
    def healthz(engine: EngineDep) -> Health:
        return Health(status="ok", threads=engine.catalog.count(), model=engine.encoder.name)

    return app
