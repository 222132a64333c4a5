"""What a serving replica runs beside its requests, started and stopped in one place: the
engine (warmed up), the escalation loop, the index refresher, the cache warmer and, with
UNSOURCE_RETENTION_DAYS, retention; BLAS held to ``blas_threads`` and the loaded heap frozen
out of the garbage collector's view while serving."""

import gc
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial

from fastapi import FastAPI
from threadpoolctl import threadpool_limits

from index.activity import ActivityStore
from service import experts
from service.background import Once, Periodic
from service.config import Settings
from service.escalation import Escalations
from service.observability import Metrics
from service.runtime import Engine, build_engine

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 3600.0


def retention(activity: ActivityStore, days: int, owner: str) -> None:
    """Purge the suggest log and votes older than ``days`` (UNSOURCE_RETENTION_DAYS), on one
    replica at a time: the one that holds the ``retention`` lease for this round."""
    now = datetime.now(UTC)
    lease = timedelta(seconds=RETENTION_EVERY_S * 0.9)
    if not activity.try_lease("retention", owner, now, now + lease):
        return
    logged, votes = activity.purge(now - timedelta(days=days))
    if logged or votes:
        log.info("retention: purged %d suggest-log rows and %d votes", logged, votes)


_frozen = 0  # serving apps in this process that hold the heap frozen
_frozen_lock = threading.Lock()


@contextmanager
def frozen_heap() -> Iterator[None]:
    """What a loaded engine holds (models, a million-entry index's key set, ...) is moved
    out of the cyclic garbage collector's view while serving: it lives as long as the app,
    yet every full collection walked all of it. At a million threads a full collection
    took 115-130 ms, once every ~300 requests, each time inside a request. Unfrozen when
    the last serving app in the process stops."""
    global _frozen
    with _frozen_lock:
        gc.collect()
        gc.freeze()
        _frozen += 1
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen -= 1
            if not _frozen:
                gc.unfreeze()


@asynccontextmanager
async def serving(
    app: FastAPI, *, settings: Settings, engine: Engine | None, metrics: Metrics
) -> AsyncIterator[None]:
    """The app's lifespan: ``engine`` (else one built from ``settings``) and its jobs."""
    app.state.engine = engine or build_engine(settings)
    app.state.engine.warm_up()
    # Each request is its own thread; multi-threaded BLAS under them spins (measured:
    # 35 vs 831 triage predictions/s from 16 threads on 2 cores). After the engine, so
    # that every BLAS its models loaded is covered.
    blas = threadpool_limits(settings.blas_threads, user_api="blas")
    metrics.track_index(app.state.engine.corpus.indexed)  # in memory: no table count
    app.state.escalations = Escalations(
        app.state.engine.activity,
        settings,
        on_attempt=lambda outcome: metrics.webhooks.labels(outcome).inc(),
        find_experts=partial(experts.as_payload, app.state.engine),
    )
    app.state.escalations.start()
    refresher = Periodic(
        "index-refresh", settings.index_refresh_seconds, app.state.engine.refresh_index
    )
    refresher.start()
    jobs: list[Periodic | Once] = [refresher]
    jobs.append(Once("warm-caches", app.state.engine.warm_caches))
    jobs[-1].start()
    if settings.retention_days:
        purge = partial(
            retention,
            app.state.engine.activity,
            settings.retention_days,
            app.state.escalations.owner,
        )
        jobs.append(Periodic("retention", RETENTION_EVERY_S, purge))
        jobs[-1].start()
    try:
        with frozen_heap():
            yield
    finally:
        for job in jobs:
            job.stop()
        app.state.escalations.stop()
        app.state.engine.close()
        blas.restore_original_limits()
