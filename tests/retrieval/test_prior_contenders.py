"""The prior is read only for the candidates it can carry into what a search shows
(``contenders``): what is shown, and in which order with which scores, is the same as
with every candidate's prior read."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval.prior import Signals, apply_prior
from retrieval.search import Shown, contenders

scores = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)
signal = st.builds(
    Signals,
    accepted=st.booleans(),
    votes=st.integers(-20, 50),
    helpful=st.integers(0, 30),
    unhelpful=st.integers(0, 30),
)


def _shown(
    fused: dict[int, float], cosine: dict[int, float], shown: Shown
) -> list[tuple[int, float]]:
    order = sorted(fused, key=lambda pk: (-fused[pk], pk))
    return [(pk, fused[pk]) for pk in order if cosine[pk] >= shown.floor][: shown.top]


@settings(max_examples=300, deadline=None)
@given(
    candidates=st.dictionaries(st.integers(1, 400), st.tuples(scores, scores, signal), max_size=60),
    top=st.integers(1, 10),
    floor=st.floats(min_value=-1.0, max_value=1.0, allow_nan=False),
    weight=st.floats(min_value=0.0, max_value=0.5, allow_nan=False),
)
def test_reading_only_the_contenders_shows_the_same_result(
    candidates: dict[int, tuple[float, float, Signals]], top: int, floor: float, weight: float
) -> None:
    fused = {pk: f for pk, (f, _, _) in candidates.items()}
    cosine = {pk: c for pk, (_, c, _) in candidates.items()}
    signals = {pk: s for pk, (_, _, s) in candidates.items()}
    shown = Shown(top, floor)
    judged = contenders(fused, cosine, shown, weight)
    everything = apply_prior(fused, signals, weight)
    only = apply_prior(fused, {pk: signals[pk] for pk in judged}, weight)
    assert _shown(only, cosine, shown) == _shown(everything, cosine, shown)


def test_few_candidates_are_read_when_the_best_are_far_ahead() -> None:
    fused = {1: 0.9, 2: 0.85, 3: 0.5, 4: 0.4, 5: 0.2}
    cosine = dict.fromkeys(fused, 0.6)
    assert contenders(fused, cosine, Shown(1, 0.45), 0.05) == [1, 2]
    cosine[1] = 0.3  # below the floor: never shown, its prior is not needed
    assert contenders(fused, cosine, Shown(1, 0.45), 0.05) == [2]
