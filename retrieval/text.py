"""How threads and questions become text for the encoder."""

from __future__ import annotations

import re
from collections.abc import Sequence

from index.models import Thread

THREAD_FIELDS = ("title", "body", "answer")
_SPACE = re.compile(r"\s+")


def clean(text: str) -> str:
    """Collapse whitespace; SemEval's cleansed text writes commas as ';'."""
    return _SPACE.sub(" ", text.replace(";", ",")).strip()


def join(parts: Sequence[str]) -> str:
    kept = [clean(p) for p in parts if p and p.strip()]
    return ". ".join(p.rstrip(".?!") if i < len(kept) - 1 else p for i, p in enumerate(kept))


def thread_text(thread: Thread, fields: Sequence[str] = ("title", "body")) -> str:
    """The text embedded for a thread: the chosen fields, in order."""
    return join([str(getattr(thread, f)) for f in fields])


def question_text(title: str, body: str = "") -> str:
    return join([title, body])
