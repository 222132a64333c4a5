"""Every regular expression that sees public text runs in time linear in its size.

Each adversarial input is built at two sizes, n and 8n (8n up to the body limit); a linear
pattern takes about 8x as long on the larger one, a quadratic one about 64x. The test fails
on growth above 24x (the minimum of several runs is taken, so a busy machine makes a run
slower, not the ratio larger). Patterns are found by walking the modules, so a new
module-level pattern is tested without anyone remembering to add it.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import re
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index import models
from index.store import protocol as store
from retrieval import text
from retrieval.encoders import base as encoder
from triage import lexicon as lexicon_mod
from triage import pii
from triage.lexicon import Lexicon

BODY_LIMIT = models.MAX_TITLE + models.MAX_BODY
LARGE = BODY_LIMIT
SMALL = LARGE // 8
MAX_GROWTH = 24.0

# prefixes that put a pattern in its most expensive state, fillers that keep it there
PREFIXES = [
    "",
    "account",
    "account number ",
    "customer no. ",
    "número de cliente ",
    "conto ",
    "+",
    "+1 ",
    "(12) ",
    "GB82 ",
    "a@",
    "4111 ",
    "x ",
]
FILLERS = [" ", "1", "1 ", "1-", "1.", "1\u00a0", "a", "a.", "a-", "A1", "-", ".", "@", "\t", "12 "]
# dense findings (security finding N5: overlap resolution was quadratic in their number)
DENSE = ["a@b.cc ", "conto 12345 ", "11 11 11 11 11 ", "912345678 "]
FILLERS += DENSE


def _inputs(size: int) -> list[str]:
    out = []
    for prefix in PREFIXES:
        for filler in FILLERS:
            body = filler * ((size - len(prefix)) // len(filler))
            out.append(prefix + body + "x!")
    return out


def _patterns() -> list[tuple[str, re.Pattern[str]]]:
    found = []
    for module in (pii, models, store, encoder, text, lexicon_mod):
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern):
                found.append((f"{module.__name__}.{name}", value))
    return found


def _best_time(func: Callable[[str], object], inputs: list[str], repeat: int = 3) -> float:
    best = float("inf")
    gc.disable()  # collections triggered by many small objects are not the pattern's cost
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            for item in inputs:
                func(item)
            best = min(best, time.perf_counter() - start)
    finally:
        gc.enable()
    return best


def _count(pattern: re.Pattern[str]) -> Callable[[str], object]:
    def run(text_: str) -> int:
        return sum(1 for _ in pattern.finditer(text_))

    return run


def _assert_linear(func: Callable[[str], object], what: str) -> None:
    small, large = _inputs(SMALL), _inputs(LARGE)
    _best_time(func, small, 1)  # warm caches
    t_small = max(_best_time(func, small), 1e-4)
    t_large = _best_time(func, large)
    growth = t_large / t_small
    assert growth < MAX_GROWTH, f"{what}: {t_small:.4f}s -> {t_large:.4f}s ({growth:.1f}x for 8x)"


def test_patterns_are_found() -> None:
    names = {name for name, _ in _patterns()}
    assert {"triage.pii._ACCOUNT", "triage.pii._EMAIL", "triage.pii._PHONE"} <= names


@pytest.mark.parametrize("name,pattern", _patterns(), ids=[n for n, _ in _patterns()])
def test_every_pattern_is_linear(name: str, pattern: re.Pattern[str]) -> None:
    _assert_linear(_count(pattern), f"{name} finditer")
    _assert_linear(pattern.fullmatch, f"{name} fullmatch")


def test_the_audit_input_is_fast() -> None:
    """The audit's case: "account" + 20,000 spaces + "x" took ~9 s per pass."""
    evil = "account" + " " * 20_000 + "x"
    start = time.perf_counter()
    pii.detect(evil)
    assert time.perf_counter() - start < 0.5


def test_detectors_are_linear() -> None:
    _assert_linear(pii.detect, "pii.detect")
    _assert_linear(pii.redact, "pii.redact")


@pytest.mark.parametrize("filler", DENSE)
def test_detection_is_linear_in_the_number_of_findings(filler: str) -> None:
    """A text that is nothing but findings: 8 times the text, 8 times the findings."""

    def sized(size: int) -> list[str]:
        return [filler * (size // len(filler))]

    detect = pii.detect
    _best_time(detect, sized(SMALL), 1)
    t_small = max(_best_time(detect, sized(SMALL)), 1e-4)
    growth = _best_time(detect, sized(LARGE)) / t_small
    assert growth < MAX_GROWTH, f"{filler!r}: {growth:.1f}x for 8x the findings"


def test_lexicon_is_linear() -> None:
    lex = Lexicon.load()
    _assert_linear(lex.match, "lexicon.match")


def test_timestamps_are_linear_and_bounded() -> None:
    from pydantic import TypeAdapter, ValidationError

    adapter: TypeAdapter[object] = TypeAdapter(models.AwareTimestamp)

    def parse(value: str) -> None:
        with contextlib.suppress(ValidationError):
            adapter.validate_python(value)

    _assert_linear(parse, "timestamp")
    with pytest.raises(ValidationError, match="at most 64"):
        adapter.validate_python("1" * 20_000 + "x")
    with pytest.raises(ValidationError, match="ISO-8601"):
        adapter.validate_python("1700000000")


# -- properties of the detectors (hypothesis) ----------------------------------------------

_TEXT = st.lists(
    st.sampled_from([*list("0123456789 -.+@()#:aAxX\xa0\n"), "account ", "conta "]),
    max_size=120,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_findings_are_ordered_disjoint_and_redacted(text_: str) -> None:
    found = pii.detect(text_)
    for a, b in itertools.pairwise(found):
        assert a.end <= b.start
    assert all(0 <= f.start < f.end <= len(text_) for f in found)
    redacted = pii.redact(text_, found)
    for f in found:
        assert f.placeholder in redacted


_SEPARATORS = st.sampled_from([" ", "-", ".", "\u00a0", "  ", ""])


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abc ,", max_size=40), _SEPARATORS, st.text(alphabet="abc ,", max_size=40))
def test_a_card_is_always_redacted(before: str, sep: str, after: str) -> None:
    groups = ["4111", "1111", "1111", "1111"]
    card = sep.join(groups)
    redacted = pii.redact(f"{before} {card} {after}")
    assert "[CARD]" in redacted
    assert "4111" not in redacted


@settings(max_examples=400, deadline=None)
@given(st.one_of(_TEXT, st.text(max_size=80)))
def test_skipping_texts_without_digits_or_at_signs_finds_the_same(text_: str) -> None:
    """``detect`` scans only texts with a digit or an "@"; every detector needs one."""
    assert pii.detect(text_) == pii._detect_all(text_)
    stripped = "".join(ch for ch in text_ if ch != "@" and not ch.isdigit())
    assert pii._detect_all(stripped) == []
