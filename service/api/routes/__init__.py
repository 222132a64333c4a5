"""The HTTP API, one ``APIRouter`` per feature; ``create_app`` includes them all.

- ``suggest``: ``POST /v1/suggest`` (public)
- ``feedback``: ``POST /v1/feedback`` (public), ``GET /v1/stats`` (agent)
- ``triage``: ``POST /v1/triage`` (agent)
- ``questions``: ``/v1/questions``, ``/v1/escalations`` (agent)
- ``threads``: ``/v1/threads/{id}``, ``/v1/threads:bulk`` (reads agent, writes admin)
- ``ops``: ``/healthz``, ``/readyz``, ``/metrics``, ``/v1/admin/*``
- ``community``: ``GET /v1/community/leaders`` (public)
- ``insights``: ``GET /v1/insights/gaps`` (agent)
- ``widget``: ``/widget.js``, ``/demo``
- ``hooks``: ``POST /v1/hooks/discourse`` (signed by the forum, no API key)
"""

from fastapi import APIRouter

from service.api.routes import (
    community,
    feedback,
    hooks,
    insights,
    ops,
    questions,
    suggest,
    threads,
    triage,
    widget,
)

ROUTERS: list[APIRouter] = [
    suggest.router,
    feedback.router,
    triage.router,
    questions.router,
    threads.router,
    ops.router,
    community.router,
    insights.router,
    widget.router,
    hooks.router,
]
