import pytest

from retrieval.fusion import linear_fusion, reciprocal_rank_fusion


def test_rrf_matches_hand_computation() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60)
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[2] == pytest.approx(1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert sorted(fused, key=lambda x: -fused[x]) == [1, 3, 2]


def test_linear_fusion_normalises_bm25_by_max() -> None:
    fused = linear_fusion({1: 0.5, 2: 0.9}, {1: 10.0, 3: 5.0}, dense_weight=0.8)
    assert fused[1] == pytest.approx(0.8 * 0.5 + 0.2 * 1.0)
    assert fused[2] == pytest.approx(0.8 * 0.9)
    assert fused[3] == pytest.approx(0.2 * 0.5)


def test_linear_fusion_without_keyword_hits_is_dense() -> None:
    assert linear_fusion({1: 0.3}, {}, 0.7) == {1: pytest.approx(0.21)}
