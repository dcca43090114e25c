"""Ranking metrics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from polyrec.engine.evaluate.metrics import (
    RankingAccumulator,
    expected_at_k,
    random_expectation,
    rank_counts,
    top_k_mask,
)

NEG = -np.inf


def test_rank_counts_strictly_higher_and_ties_exclude_the_target() -> None:
    scores = np.array([[5.0, 3.0, 3.0, 1.0, NEG], [0.0, 1.0, 2.0, 3.0, 4.0]])
    higher, tied = rank_counts(scores, np.array([1, 4]))
    assert higher.tolist() == [1, 0]
    assert tied.tolist() == [1, 0]


def test_single_item_metrics_by_hand() -> None:
    # target at rank 3 exactly (two strictly higher, no ties)
    higher, tied = np.array([2]), np.array([0])
    assert expected_at_k(higher, tied, "hit", 10)[0] == 1.0
    assert expected_at_k(higher, tied, "ndcg", 10)[0] == pytest.approx(1 / math.log2(4))  # 0.5
    assert expected_at_k(higher, tied, "mrr", 10)[0] == pytest.approx(1 / 3)
    # rank 11 is outside the top 10: all zero
    for metric in ("hit", "ndcg", "mrr"):
        assert expected_at_k(np.array([10]), np.array([0]), metric, 10)[0] == 0.0
    # rank 1
    assert expected_at_k(np.array([0]), np.array([0]), "ndcg", 10)[0] == 1.0


def test_ties_take_the_expectation_over_random_order() -> None:
    # one item strictly higher, one tied: the rank is 2 or 3 with equal chance
    higher, tied = np.array([1]), np.array([1])
    assert expected_at_k(higher, tied, "hit", 10)[0] == 1.0
    assert expected_at_k(higher, tied, "ndcg", 10)[0] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 2)
    assert expected_at_k(higher, tied, "mrr", 10)[0] == pytest.approx((1 / 2 + 1 / 3) / 2)
    # the tie straddles the cut-off at K=2: rank 2 hits, rank 3 misses
    assert expected_at_k(higher, tied, "hit", 2)[0] == 0.5
    assert expected_at_k(higher, tied, "ndcg", 2)[0] == pytest.approx(1 / math.log2(3) / 2)


def test_constant_scores_get_exactly_the_random_value() -> None:
    n = 100
    scores = np.zeros((1, n))
    higher, tied = rank_counts(scores, np.array([37]))
    assert expected_at_k(higher, tied, "hit", 10)[0] == pytest.approx(10 / n)
    expected_mrr = sum(1 / r for r in range(1, 11)) / n
    assert expected_at_k(higher, tied, "mrr", 10)[0] == pytest.approx(expected_mrr)
    assert random_expectation(np.array([n]), "mrr", 10)[0] == pytest.approx(expected_mrr)
    assert random_expectation(np.array([5]), "hit", 10)[0] == 1.0  # fewer candidates than K


def test_rank_counts_rejects_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        rank_counts(np.array([[1.0, np.nan]]), np.array([0]))


def test_top_k_breaks_ties_by_catalog_order_and_skips_masked() -> None:
    scores = np.array([[1.0, 2.0, 2.0, 2.0, 0.0], [NEG, NEG, 1.0, NEG, NEG]])
    mask = top_k_mask(scores, 2)
    assert np.flatnonzero(mask[0]).tolist() == [1, 2]
    assert np.flatnonzero(mask[1]).tolist() == [2]  # masked items never fill the list
    assert top_k_mask(scores, 10)[0].sum() == 5  # K larger than the catalog


def test_accumulator_means_coverage_and_unranked_targets() -> None:
    acc = RankingAccumulator(n_items=5, ks=(1, 2))
    scores = np.array(
        [
            [4.0, 3.0, 2.0, 1.0, 0.0],  # target 0 at rank 1
            [4.0, 3.0, 2.0, 1.0, NEG],  # target 2 at rank 3
            [0.0, 0.0, 0.0, 0.0, 0.0],  # target missing from the catalog
        ]
    )
    acc.add(scores, np.array([0, 2, -1]))
    result = acc.result()
    assert result["cases"] == 3 and result["unranked"] == 1
    assert result["hit@1"] == pytest.approx(1 / 3)
    assert result["hit@2"] == pytest.approx(1 / 3)
    assert result["mrr@2"] == pytest.approx(1 / 3)
    assert result["ndcg@2"] == pytest.approx(1 / 3)
    # top-1 lists: item 0 (rows 1, 2 and row 3 by catalog order) -> 1 of 5 items
    assert result["coverage@1"] == pytest.approx(1 / 5)
    assert result["coverage@2"] == pytest.approx(2 / 5)
    chance = acc.random_result()
    # random hit@1 over 5 and 4 candidates; the unranked case counts as 0
    assert chance["hit@1"] == pytest.approx((1 / 5 + 1 / 4 + 0) / 3)


def test_accumulator_checks_the_score_shape() -> None:
    acc = RankingAccumulator(n_items=3)
    with pytest.raises(ValueError, match="expected"):
        acc.add(np.zeros((2, 4)), np.array([0, 1]))
    with pytest.raises(ValueError, match="positive"):
        RankingAccumulator(n_items=3, ks=(0,))
