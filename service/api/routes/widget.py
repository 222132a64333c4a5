"""The embeddable suggest widget (/widget.js), a demo forum page (/demo) and the staff
console (/console: one static page; its data comes from the agent API with the key the
user types, kept in the tab's sessionStorage)."""

from __future__ import annotations

import html
from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["widget"])


@cache
def _static(name: str) -> str:
    return files("service").joinpath("static", name).read_text(encoding="utf-8")


@router.get(
    "/widget.js", response_class=Response, responses={200: {"content": {"text/javascript": {}}}}
)
def widget_js() -> Response:
    """The widget script. Include it with `data-target` (the question input's selector) and
    `data-key` (a public API key)."""
    return Response(
        _static("widget.js"),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.get(
    "/console.js", response_class=Response, responses={200: {"content": {"text/javascript": {}}}}
)
def console_js() -> Response:
    """The staff console's script (a file of its own: the console's CSP allows no inline
    script)."""
    return Response(
        _static("console.js"),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/demo", response_class=HTMLResponse)
def demo(request: Request) -> HTMLResponse:
    """A forum page with the widget, over whatever threads are loaded (`make serve` loads
    the Lumio demo threads)."""
    settings = request.app.state.settings
    if settings.demo_key:
        key_attr, notice = f'data-key="{html.escape(settings.demo_key)}"', "Demo with a public key."
    elif settings.dev_mode:
        key_attr, notice = "", "Dev mode: no API key needed on this machine."
    else:
        key_attr = ""
        notice = "Set UNSOURCE_DEMO_KEY to a public key to use this page with keys enabled."
    page = _static("demo.html").replace("{key_attr}", key_attr).replace("{notice}", notice)
    return HTMLResponse(page)


@router.get("/console", response_class=HTMLResponse)
def console() -> HTMLResponse:
    """The staff console: escalation queue, knowledge gaps, deflection and staff rate per
    day, per-language figures and the kudos leaderboard. The page holds no data; it asks
    for an agent key and reads the agent API with it."""
    return HTMLResponse(_static("console.html"), headers={"Cache-Control": "no-store"})
