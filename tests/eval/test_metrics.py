import math

import pytest

from eval.metrics import average_precision, ndcg, precision_at_1, recall_at, reciprocal_rank


def test_average_precision_official_semeval_way() -> None:
    # relevant at ranks 1 and 3: (1/1 + 2/3) / 2
    assert average_precision(["a", "x", "b", "y"], {"a", "b"}) == pytest.approx((1 + 2 / 3) / 2)
    # only relevant items found in the list count; none found -> 0
    assert average_precision(["x", "a"], {"a", "zzz"}) == pytest.approx(0.5)
    assert average_precision(["x", "y"], {"a"}) == 0.0
    assert average_precision(["x"], set()) == 0.0


def test_reciprocal_rank_cutoff() -> None:
    assert reciprocal_rank(["x", "a"], {"a"}) == 0.5
    assert reciprocal_rank(["x"] * 10 + ["a"], {"a"}, k=10) == 0.0


def test_ndcg_graded() -> None:
    gains = {"p": 2.0, "r": 1.0}
    ideal = 2 + 1 / math.log2(3)
    assert ndcg(["r", "p"], gains) == pytest.approx((1 + 2 / math.log2(3)) / ideal)
    assert ndcg(["p", "r"], gains) == pytest.approx(1.0)
    assert ndcg(["x"], {}) == 0.0


def test_recall_and_p_at_1() -> None:
    assert recall_at(["a", "x", "b"], {"a", "b", "c"}, 2) == pytest.approx(1 / 3)
    assert precision_at_1(["a"], {"a"}) == 1.0 and precision_at_1([], {"a"}) == 0.0
