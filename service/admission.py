"""What a thread must be before it reaches the store: every text field redacted, its
language known, and an id with no personal data in it (an id cannot be redacted: it is the
forum's key, so one holding PII is refused with a 422 naming the field)."""

from __future__ import annotations

from collections.abc import Sequence

from index.errors import ValidationFailed
from index.models import Thread
from retrieval.language import detect
from retrieval.text import thread_text
from triage import pii

ID_PII = ("card", "iban", "email")  # checksummed or unambiguous: never in a legitimate id


def admit(threads: Sequence[Thread]) -> list[Thread]:
    """The threads as they may be stored: ids checked, fields redacted, language set."""
    check_ids([t.id for t in threads])
    return [with_language(redact_thread(t)) for t in threads]


def with_language(thread: Thread) -> Thread:
    """A thread that does not declare its language gets the detected one."""
    if thread.language:
        return thread
    return thread.model_copy(update={"language": detect(thread_text(thread))})


def redact_thread(thread: Thread) -> Thread:
    """Every stored text field redacted: title, body, answer, url and tags."""
    fields: dict[str, object] = {
        f: pii.redact(getattr(thread, f)) for f in ("title", "body", "answer")
    }
    if thread.url:
        fields["url"] = pii.redact(thread.url)
    fields["tags"] = list(dict.fromkeys(pii.redact(t) for t in thread.tags))
    return thread.model_copy(update=fields)


def _id_findings(value: str) -> list[pii.Finding]:
    """PII in an id, as written and with its separators (- _ : .) read as spaces, so a
    card number glued to a prefix ("c-4111...") is still found."""
    spaced = value.translate(str.maketrans("-_:.", "    "))
    return pii.detect(value) + pii.detect(spaced)


def check_ids(ids: Sequence[str], field: str = "id") -> None:
    """Refuse ids that carry a card number, an IBAN or an email (422 naming the field)."""
    problems = [
        (f"item {i}", field, f"contains personal data ({found[0].type}); ids are stored as given")
        for i, value in enumerate(ids)
        if (found := [f for f in _id_findings(value) if f.type in ID_PII])
    ]
    if problems:
        raise ValidationFailed(problems)
