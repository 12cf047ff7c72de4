"""Pair features (known answers), the pair classifier, and its decision beating a threshold rule (synthetic)."""

import numpy as np
import pytest
import scipy.sparse as sp

from samesame.match.candidates import Candidates
from samesame.match.pairs import (PairClassifier, TitleTokens, pair_dot, pair_features, rank_in_row, reverse_index,
                                  row_best, row_order, symmetric_probability)
from samesame.match.recipe import Recipe, keep_pairs, pair_scores, threshold_sweep, tune_recipe
from samesame.match.tuning import tune_pair_step
from samesame.run.settings import defaults


def _both_ways(pairs, values):
    """Directed rows/cols/values from undirected (i, j) pairs and one value per pair."""
    rows = np.array([i for i, j in pairs] + [j for i, j in pairs])
    cols = np.array([j for i, j in pairs] + [i for i, j in pairs])
    return rows, cols, np.array(list(values) * 2, dtype=np.float32)


def test_reverse_index_finds_the_opposite_direction_and_rejects_one_way_pairs():
    rows, cols = np.array([0, 2, 1, 0]), np.array([1, 0, 0, 2])
    assert reverse_index(rows, cols, 3).tolist() == [2, 3, 0, 1]
    with pytest.raises(ValueError, match="not symmetric"):
        reverse_index(np.array([0]), np.array([1]), 2)


def test_reverse_index_of_sorted_candidates_agrees_with_the_general_search():
    rng = np.random.default_rng(0)
    n = 300
    keys = rng.choice(n * n, 4000, replace=False)
    rows, cols = keys // n, keys % n
    keys = np.unique(np.r_[rows * n + cols, cols * n + rows][np.r_[rows != cols, rows != cols]])
    rows, cols = keys // n, keys % n                                  # sorted, unique, both directions
    rev = reverse_index(rows, cols, n)
    assert np.array_equal(rows[rev], cols) and np.array_equal(cols[rev], rows)
    shuffled = rng.permutation(len(rows))                             # the general path
    assert np.array_equal(shuffled[reverse_index(rows[shuffled], cols[shuffled], n)], rev[shuffled])
    with pytest.raises(ValueError, match="not symmetric"):
        reverse_index(np.array([0, 0, 1]), np.array([1, 2, 0]), 3)    # sorted, but (2, 0) is missing


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_order_is_lexsort_by_row_then_decreasing_score(dtype):
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 500, 20000)
    score = rng.normal(size=20000).astype(dtype)
    score[::7] = np.round(score[::7], 1)          # ties keep their input order
    score[::11], score[::13], score[::17] = np.nan, -0.0, 0.0
    score[::19] = -np.inf
    expected = np.lexsort((-np.nan_to_num(score, nan=-np.inf), rows))
    assert np.array_equal(row_order(rows, score), expected)
    assert np.array_equal(row_order(np.sort(rows), score), np.lexsort((-np.nan_to_num(score, nan=-np.inf),
                                                                        np.sort(rows))))
    assert row_order(np.zeros(0, int), np.zeros(0)).tolist() == []


def test_rank_and_best_per_row_with_missing_similarity_last():
    rows = np.array([0, 0, 0, 1])
    sim = np.array([0.2, np.nan, 0.9, 0.5], dtype=np.float32)
    assert rank_in_row(rows, sim).tolist() == [1, 2, 0, 0]
    best = row_best(rows, sim, 3)
    assert best[:2].tolist() == pytest.approx([0.9, 0.5]) and np.isnan(best[2])


def test_pair_features_known_answers():
    # 0-1 close, 0-2 far; row 1's only candidate is 0, row 0's best is 1
    rows, cols, tfidf = _both_ways([(0, 1), (0, 2)], [0.8, 0.3])
    conflict = np.array([False, True, False, True])
    tokens = TitleTokens.from_titles(["kopi 200 gr", "kopi 200 gr", "teh 400 gr botol"])
    x, names = pair_features(rows, cols, 3, {"tfidf": tfidf, "fused": tfidf}, conflict, tokens)
    f = dict(zip(names, x.T))
    assert x.shape == (4, len(names)) and x.dtype == np.float32
    # pair order: (0,1) (0,2) (1,0) (2,0)
    assert f["tfidf_rank_ij"].tolist() == [0, 1, 0, 0]
    assert f["tfidf_rank_ji"].tolist() == [0, 0, 0, 1]
    assert f["tfidf_rel_i"] == pytest.approx([0.0, -0.5, 0.0, 0.0])
    assert f["tfidf_rel_j"] == pytest.approx([0.0, 0.0, 0.0, -0.5])
    assert f["unit_conflict"].tolist() == [0, 1, 0, 1]
    assert f["same_title"].tolist() == [1, 0, 1, 0]
    assert f["word_jaccard"] == pytest.approx([1.0, 1 / 6, 1.0, 1 / 6])
    assert f["numbers_mismatch"].tolist() == [0, 1, 0, 1]
    assert f["density0.6_i"].tolist() == [1, 1, 1, 0]          # row 0 and 1 each have one pair >= 0.6
    assert f["common0.6"].tolist() == [2, 0, 2, 0]             # 0 and 1 share {0, 1}; 2 is linked to nobody
    # profiles (self = 1): row 0 = (1, 0.8, 0.3), row 1 = (0.8, 1, 0)
    assert f["neighbourhood_cos"][0] == pytest.approx(1.6 / np.sqrt(1.73 * 1.64), rel=1e-5)
    assert f["char"][0] == pytest.approx(1.0, abs=1e-5) and f["char"][1] < 0.5


def test_title_tokens_accept_pools_without_numbers_or_with_empty_titles():
    tokens = TitleTokens.from_titles(["kopi", "", "teh"])
    assert tokens.numbers.shape[0] == 3 and tokens.numbers.nnz == 0


def test_symmetric_probability_averages_both_directions():
    rows, cols = np.array([0, 1]), np.array([1, 0])
    assert symmetric_probability(np.array([0.2, 0.6]), rows, cols, 2).tolist() == pytest.approx([0.4, 0.4])


def test_classifier_refuses_pairs_of_one_kind_only():
    x = np.array([[0.0], [1.0], [0.1], [0.9]], dtype=np.float32)
    with pytest.raises(ValueError, match="both matching and non-matching"):
        PairClassifier().out_of_fold(x, np.ones(4, bool), np.arange(4), ["a"])


def _crowded_pairs(seed=0, n_pairs=150, decoys=4):
    """Listings in pairs; each pair lives in a neighbourhood whose similarity level varies.

    The true partner is always i's best candidate (0.15 above its decoys), but the
    level offset spans 0.5, so no single similarity threshold separates partners
    from decoys, while "similarity minus i's best" does.
    """
    rng = np.random.default_rng(seed)
    n = 2 * n_pairs
    level = rng.uniform(0.0, 0.5, n_pairs)
    undirected, values = [], []
    for p in range(n_pairs):
        a, b = 2 * p, 2 * p + 1
        undirected.append((a, b))
        values.append(level[p] + 0.45)
        for d in rng.choice(np.setdiff1d(np.arange(n), [a, b]), decoys, replace=False):
            undirected.append((a, int(d)))
            values.append(level[p] + 0.3 - 0.1 * rng.random())
    keys = {}
    for (i, j), v in zip(undirected, values):       # one value per unordered pair
        keys.setdefault((min(i, j), max(i, j)), v)
    rows, cols, sim = _both_ways(list(keys), keys.values())
    labels = np.arange(n) // 2
    cands = Candidates(rows, cols, {"tfidf": sim}, np.zeros(len(rows), bool), n)
    return cands, labels


def test_classifier_beats_the_threshold_rule_when_a_pool_relative_feature_matters():
    cands, labels = _crowded_pairs()
    rule = tune_recipe(cands, labels, concat=["tfidf"], grid=defaults().tuning)
    rule_f1 = pair_scores(cands, keep_pairs(cands, rule), labels).mean_f1
    x, names = pair_features(cands.rows, cands.cols, cands.n, {**cands.sims, "fused": cands.sims["tfidf"]},
                             cands.conflict, TitleTokens.from_titles(["x"] * cands.n))
    same = labels[cands.rows] == labels[cands.cols]
    folds = np.minimum(labels[cands.rows], labels[cands.cols])
    p = symmetric_probability(PairClassifier(max_iter=50).out_of_fold(x, same, folds, names), cands.rows, cands.cols,
                              cands.n)
    step = tune_pair_step(cands, p, labels, defaults().tuning)
    pair_f1 = pair_scores(cands, keep_pairs(cands, step.rule(), p), labels).mean_f1
    assert rule_f1 < 0.9
    assert pair_f1 > rule_f1 + 0.05


def test_a_pool_of_two_label_groups_cross_fits_in_two_folds_and_one_group_is_a_clear_error():
    """06's ablation tunes on half pools; a tiny one may hold fewer label groups than the classifier's folds."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 1)).astype(np.float32)
    same = np.arange(40) % 2 == 0
    clf = PairClassifier(max_iter=10)
    assert clf.out_of_fold(x, same, np.arange(40) % 2, ["a"]).shape == (40,) and clf.trees.n_models == 2
    with pytest.raises(ValueError, match="at least 2 label groups"):
        PairClassifier().out_of_fold(x, same, np.zeros(40, int), ["a"])


def test_a_feature_missing_on_every_pair_does_not_break_training():
    from samesame.match.pairs import PairClassifier

    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=200), np.full(200, np.nan)])
    same = (x[:, 0] > 0).astype(int)
    clf = PairClassifier(max_iter=20)
    assert clf.out_of_fold(x, same, np.arange(200) % 10, ["sim", "image"]).shape == (200,)
    assert clf.predict_proba(x, ["sim", "image"])[same == 1].mean() > 0.5


def test_classifier_predicts_with_the_mean_of_its_fold_models_which_match_the_out_of_fold_probabilities():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 2)).astype(np.float32)
    same = (x[:, 0] + 0.5 * rng.normal(size=600) > 0).astype(int)
    groups = np.arange(600) % 30
    clf = PairClassifier(max_iter=30)
    oof = clf.out_of_fold(x, same, groups, ["a", "b"], folds=3)
    each = clf.predict_each(x, ["a", "b"])
    assert len(each) == 3
    np.testing.assert_allclose(clf.predict_proba(x, ["a", "b"]), np.mean(each, axis=0), rtol=1e-6)
    # each pair's out-of-fold probability (sklearn's) is exactly one fold model's prediction (the one that never saw it)
    assert np.all((np.stack(each) == oof[None, :]).sum(0) >= 1)
    with pytest.raises(ValueError, match="differ from the trained"):
        clf.predict_proba(x, ["b", "a"])
    with pytest.raises(RuntimeError, match="before out_of_fold"):
        PairClassifier().predict_proba(x, ["a", "b"])


def test_patience_stops_each_fold_model_on_held_out_groups_before_max_iter():
    """A noisy one-feature problem is learned in a few trees; the rest only fit noise, and patience skips them."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4000, 3)).astype(np.float32)
    same = (x[:, 0] + rng.normal(size=4000) > 0).astype(int)
    groups = np.arange(4000) % 200
    patient, full = PairClassifier(max_iter=300, patience=5), PairClassifier(max_iter=300)
    p_patient = patient.out_of_fold(x, same, groups, ["a", "b", "c"])
    p_full = full.out_of_fold(x, same, groups, ["a", "b", "c"])
    assert all(np.diff(patient.trees.model_start) < 100) and all(np.diff(full.trees.model_start) == 300)
    assert _log_loss(same, p_patient) < _log_loss(same, p_full)            # the extra trees over-fit


def _log_loss(y, p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def test_the_stopping_set_is_whole_label_groups_or_none_in_a_pool_too_small_for_one():
    from samesame.match.pairs import _stopping_pairs

    groups = np.repeat(np.arange(50), 4)
    same = np.tile([True, False], 100)
    stop = _stopping_pairs(same, groups, seed=0)
    assert stop.sum() == 5 * 4                                           # a tenth of the groups, every pair of each
    assert all(stop[groups == g].all() or not stop[groups == g].any() for g in range(50))
    assert _stopping_pairs(np.array([True, False, False, False]), np.array([0, 1, 1, 1]), seed=0) is None


def test_saved_classifier_predicts_the_same_from_json_and_arrays(tmp_path):
    import json

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    same = (np.nan_to_num(x[:, 0]) + 0.3 * np.nan_to_num(x[:, 1]) > 0).astype(int)
    clf = PairClassifier(max_iter=20)
    clf.out_of_fold(x, same, np.arange(300) % 6, ["a", "b", "c"])
    folder = clf.save(tmp_path / "pc")
    assert sorted(p.name for p in folder.iterdir()) == ["models.npz", "pair_classifier.json"]
    assert "sklearn" not in json.loads((folder / "pair_classifier.json").read_text())    # no version to match
    loaded = PairClassifier.load(folder)
    assert loaded.feature_names == ["a", "b", "c"] and loaded.max_iter == 20 and loaded.trees.n_models == 3
    np.testing.assert_array_equal(loaded.predict_proba(x, ["a", "b", "c"]), clf.predict_proba(x, ["a", "b", "c"]))


def test_features_of_a_subset_equal_those_rows_of_all_features():
    cands, labels = _crowded_pairs()
    sims = {**cands.sims, "fused": cands.sims["tfidf"]}
    tokens = TitleTokens.from_titles([f"item {i % 7} size {i % 3}" for i in range(cands.n)])
    full, names = pair_features(cands.rows, cands.cols, cands.n, sims, cands.conflict, tokens)
    subset = np.flatnonzero(cands.sims["tfidf"] >= np.median(cands.sims["tfidf"]))
    part, part_names = pair_features(cands.rows, cands.cols, cands.n, sims, cands.conflict, tokens, subset)
    assert part_names == names
    np.testing.assert_array_equal(part, full[subset])


def test_pair_dot_is_the_dot_product_of_the_two_rows_whatever_the_chunk():
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(40, 7)).astype(np.float32)
    sparse = sp.csr_matrix(np.where(rng.random((40, 30)) < 0.2, rng.random((40, 30)), 0.0).astype(np.float32))
    rows, cols = rng.integers(0, 40, 500), rng.integers(0, 40, 500)
    for emb, full in ((dense, dense), (sparse, sparse.toarray())):
        expected = np.einsum("ij,ij->i", full[rows], full[cols])
        for chunk in (None, 1, 7, 1000):
            np.testing.assert_allclose(pair_dot(emb, rows, cols, chunk), expected, rtol=1e-5, atol=1e-6)
    assert np.array_equal(pair_dot(dense, rows, cols), pair_dot(dense, rows, cols, 3))     # the same sums


def test_pair_dot_of_candidate_pairs_sums_one_direction_and_mirrors_it_bit_for_bit():
    rng = np.random.default_rng(2)
    n = 60
    keys = np.unique(rng.integers(0, n * n, 800))
    rows, cols = keys // n, keys % n
    keys = np.unique(np.r_[rows * n + cols, cols * n + rows])
    rows, cols = keys // n, keys % n                           # sorted, unique, both directions: mirrored
    shuffled = rng.permutation(len(rows))                      # not sorted: every pair summed
    dense = rng.normal(size=(n, 9)).astype(np.float32)
    sparse = sp.csr_matrix(np.where(rng.random((n, 30)) < 0.3, rng.random((n, 30)), 0.0).astype(np.float32))
    for emb in (dense, sparse):
        out = pair_dot(emb, rows, cols)
        assert np.array_equal(out[shuffled], pair_dot(emb, rows[shuffled], cols[shuffled]))
        assert np.array_equal(out, out[reverse_index(rows, cols, n)])


def test_threshold_sweep_equals_one_mask_per_threshold_bit_for_bit():
    """The tuning's one-pass sweep must give exactly pair_scores(keep_pairs(...)) per threshold (ties included:
    the grid search picks the first or last best, so a rounding difference would change the recipe)."""
    rng = np.random.default_rng(1)
    n, undirected = 60, {(min(i, j), max(i, j)) for i, j in rng.integers(0, 60, (400, 2)) if i != j}
    rows, cols, tfidf = _both_ways(sorted(undirected), np.round(rng.random(len(undirected)), 2))   # many ties
    phash = np.tile(rng.random(len(undirected)), 2).astype(np.float32)
    phash[::7] = np.nan
    conflict = np.tile(rng.random(len(undirected)) < 0.2, 2)
    cands = Candidates(rows, cols, {"tfidf": tfidf, "phash": phash}, conflict, n)
    labels = rng.integers(0, 15, n)
    thresholds = defaults().tuning.threshold_values
    for unit_filter in (False, True):
        for union in ({}, {"phash": 0.9}):
            base = Recipe(weights={"tfidf": 1.0}, threshold=0.5, union=union, unit_filter=unit_filter)
            score = tfidf.astype(np.float64)
            always = keep_pairs(cands, base.replace(threshold=np.inf), score)
            swept = threshold_sweep(cands, labels, score, thresholds, unit_filter, always)
            masks = [pair_scores(cands, keep_pairs(cands, base.replace(threshold=float(t)), score), labels).mean_f1
                     for t in thresholds]
            assert swept.tolist() == masks
    with pytest.raises(ValueError, match="ascending"):
        threshold_sweep(cands, labels, score, thresholds[::-1])
