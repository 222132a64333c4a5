"""Keyword search at scale leaves out query terms too common to matter
(index/store/common_terms.py)."""

from __future__ import annotations

from index.store.common_terms import CommonTerms


class Counts:
    """Document frequencies for a fake store, and a manual clock."""

    def __init__(self, documents: int, df: dict[str, int]) -> None:
        self.documents = documents
        self.df = df
        self.calls: list[tuple[str, int]] = []
        self.now = 0.0

    def doc_freq(self, term: str, cap: int) -> int:
        self.calls.append((term, cap))
        return min(self.df.get(term, 0), cap + 1)

    def terms(self, **kw: float) -> CommonTerms:
        return CommonTerms(
            self.doc_freq,
            lambda: self.documents,
            clock=lambda: self.now,
            **kw,  # type: ignore[arg-type]
        )


def test_small_stores_keep_every_term_and_count_nothing() -> None:
    counts = Counts(5000, {"the": 5000})
    assert counts.terms().keep(["the", "hub"]) == ["the", "hub"]
    assert counts.calls == []


def test_terms_above_the_cap_are_dropped_and_counts_stop_at_the_cap() -> None:
    counts = Counts(2_000_000, {"the": 900_000, "hub": 9_999, "reset": 10_001})
    common = counts.terms(budget=20_000)  # the cap alone (the posting budget: below)
    assert common.limit() == 10_000  # 0.5 % of two million, above the 5,000 floor
    assert common.keep(["the", "hub", "reset", "zigbee"]) == ["hub", "zigbee"]
    assert all(cap == 10_000 for _, cap in counts.calls)


def test_counts_are_cached_per_term_until_they_expire() -> None:
    counts = Counts(1_000_000, {"the": 900_000, "hub": 10})
    common = counts.terms(ttl=60, term_ttl=3600)
    common.keep(["the", "hub"])
    counts.now = 120.0  # the total is re-read, the term counts are kept
    assert common.keep(["the", "hub"]) == ["hub"]
    assert len(counts.calls) == 2 and common.counted == 2
    counts.df["hub"] = 600_000  # a term that became common is seen after term_ttl
    counts.now = 3800.0
    assert common.keep(["the", "hub"]) == []
    assert len(counts.calls) == 4


def test_a_saturated_count_is_redone_when_the_cap_grows() -> None:
    counts = Counts(1_000_000, {"visa": 7_000})
    common = counts.terms(ttl=60)
    assert common.keep(["visa"]) == []  # 7,000 > 5,000
    counts.documents = 2_000_000  # cap 10,000 now: 7,000 is no longer too common
    counts.now = 61.0
    assert common.keep(["visa"]) == ["visa"]
    assert counts.calls == [("visa", 5_000), ("visa", 10_000)]


def test_the_cache_is_bounded() -> None:
    counts = Counts(1_000_000, {})
    common = counts.terms(size=2)
    common.keep(["a", "b", "c"])
    common.keep(["a", "b", "c"])
    assert [t for t, _ in counts.calls] == ["a", "b", "c", "c"]  # "c" never fitted


def test_a_long_question_keeps_its_rarest_terms_within_the_posting_budget() -> None:
    df = {"hub": 4000, "reset": 3000, "zigbee": 200, "firmware": 2500, "light": 4900}
    counts = Counts(1_000_000, df)
    common = counts.terms(budget=6000)
    # rarest first: zigbee 200 + firmware 2500 + reset 3000 = 5,700; hub would pass 6,000
    assert common.keep(["hub", "reset", "zigbee", "firmware", "light"]) == [
        "reset",
        "zigbee",
        "firmware",
    ]
    # the rarest term stays even when it alone is over the budget
    assert counts.terms(budget=100).keep(["light", "hub"]) == ["hub"]
    # below the floor, no budget either
    assert Counts(4000, df).terms(budget=10).keep(["hub", "light"]) == ["hub", "light"]


def test_priming_keeps_the_counts_worth_keeping_and_nothing_in_a_small_store() -> None:
    counted: list[str] = []

    def doc_freq(term: str, cap: int) -> int:
        counted.append(term)
        return {"rare": 3, "usual": 900, "common": 9000}[term]

    small = CommonTerms(doc_freq, lambda: 1000, floor=5000)
    assert small.prime([("usual", 900)]) == 0  # nothing is ever dropped there: no counts
    large = CommonTerms(doc_freq, lambda: 1_000_000, floor=5000, fraction=0.005)  # cap 5000
    assert large.prime([("rare", 3), ("usual", 900), ("common", 9000)]) == 2
    assert large.keep(["rare", "usual", "common"]) == ["rare", "usual"]
    assert counted == ["rare"]  # the primed counts were used, the rare one counted
