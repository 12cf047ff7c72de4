import numpy as np
import pytest

from samesame.core.metrics import score_id_sets, score_matches, scores_from_counts


def test_hand_computed_example():
    # groups: A = {0, 1}, B = {2, 3, 4}
    labels = ["A", "A", "B", "B", "B"]
    matches = [np.array([0, 1]),        # perfect: f1 1
               np.array([1]),           # self only: p 1, r 1/2 -> f1 2/3
               np.array([2, 3, 0]),     # p 2/3, r 2/3 -> f1 2/3
               np.array([3, 0, 1]),     # p 1/3, r 1/3 -> f1 1/3
               np.array([4, 2, 3])]     # perfect
    s = score_matches(matches, labels)
    np.testing.assert_allclose(s.per_row["f1"], [1, 2 / 3, 2 / 3, 1 / 3, 1])
    assert s.mean_f1 == pytest.approx((1 + 2 / 3 + 2 / 3 + 1 / 3 + 1) / 5)
    assert s.mean_precision == pytest.approx((1 + 1 + 2 / 3 + 1 / 3 + 1) / 5)
    assert s.mean_recall == pytest.approx((1 + 0.5 + 2 / 3 + 1 / 3 + 1) / 5)


def test_singletons_and_self_only_score_one():
    s = score_matches([np.array([0]), np.array([1])], [7, 8])
    assert s.mean_f1 == 1.0


def test_empty_prediction_scores_zero_not_nan():
    s = score_matches([np.array([], dtype=int), np.array([1, 0])], [1, 1])
    assert s.per_row["f1"].tolist() == [0.0, 1.0]
    assert not np.isnan(s.mean_f1)


def test_duplicates_in_prediction_count_once():
    assert score_matches([np.array([0, 1, 1, 1]), np.array([1, 0])], [1, 1]).mean_f1 == 1.0


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 match sets for 3"):
        score_matches([np.array([0]), np.array([1])], [1, 1, 1])


def test_id_sets_missing_listing_scores_zero():
    truth = {"a": ["a", "b"], "b": ["a", "b"], "c": ["c"]}
    pred = {"a": ["a", "b"], "c": ["c", "a"]}
    s = score_id_sets(pred, truth)
    assert s.per_row.loc["b", "f1"] == 0.0
    assert s.per_row.loc["c", "f1"] == pytest.approx(2 / 3)
    assert s.mean_f1 == pytest.approx((1 + 0 + 2 / 3) / 3)


def test_scores_from_counts_zero_listings():
    with pytest.raises(ValueError):
        scores_from_counts(np.array([]), np.array([]), np.array([]))
