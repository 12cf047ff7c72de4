"""Decisions for the pool size the matcher will face: padded pools, scoring only their queries, the local scale."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from test_fusion import _listings

from samesame.core.metrics import score_matches
from samesame.match.candidates import Candidates, compute_signals, candidate_pairs
from samesame.match.matching import matches_from_pairs
from samesame.match.recipe import (LocalScale, Recipe, crowding, keep_pairs, kth_best, pair_scores, recipe_score,
                                   threshold_sweep)
from samesame.match.selection import Padding, Selection, fit_matcher
from samesame.run.matcher import matcher_options
from samesame.run.settings import defaults
from samesame.study.answers import pool_cost

CFG = defaults()
OPTIONS = CFG.matcher_options
FAST = replace(CFG.tuning, pair_trees=20, pair_max_leaf_nodes=7)


def _pairs(rows, cols, sims, n, scored=None) -> Candidates:
    rows, cols = np.asarray(rows), np.asarray(cols)
    return Candidates(rows, cols, {"tfidf": np.asarray(sims, dtype=np.float32)}, np.zeros(len(rows), bool), n, scored)


def test_padding_adds_whole_other_groups_in_a_fixed_order_up_to_the_target():
    df, _ = _listings(n_groups=30)
    queries = df["label_group"].isin([1000, 1001, 1002]).to_numpy()
    padding = Padding(df, None, 40, seed=0)
    pool = padding.pool(queries, ~queries)
    assert len(pool.listings) == 40 and pool.n_scored == 9 and int(pool.scored.sum()) == 9
    assert set(pool.listings.loc[pool.scored, "label_group"]) == {1000, 1001, 1002}
    assert not set(pool.listings.loc[~pool.scored, "label_group"]) & {1000, 1001, 1002}
    smaller = padding.pool(queries, ~queries, 20)         # a smaller pool is part of the larger one
    assert set(smaller.listings["posting_id"]) <= set(pool.listings["posting_id"])
    assert len(padding.pool(queries, ~queries, 10_000).listings) == len(df)    # as far as train goes
    bare = Padding(df, None, None, seed=0).pool(queries, ~queries)
    assert bare.scored is None and len(bare.listings) == 9


def test_a_padded_pool_scores_its_queries_only_and_the_sweep_agrees():
    # listings 0-3: two groups of the queries; 4-5 padding, a look-alike pair (0, 4) that must count as a false match
    labels = np.array([1, 1, 2, 2, 3, 3])
    scored = np.array([True, True, True, True, False, False])
    rows = [0, 1, 0, 4, 2, 3, 4, 5]
    cols = [1, 0, 4, 0, 3, 2, 5, 4]
    sims = [0.9, 0.9, 0.8, 0.8, 0.5, 0.5, 0.95, 0.95]
    cands = _pairs(rows, cols, sims, 6, scored)
    keep = keep_pairs(cands, Recipe({"tfidf": 1.0}, 0.7))
    expected = score_matches(matches_from_pairs(cands, keep, cands.sims["tfidf"]), labels, scored)
    # listing 0 predicts {0, 1, 4}: F1 0.8; 1: 1.0; 2 and 3 alone: 2/3 each; the padding's pair does not count
    assert pair_scores(cands, keep, labels).mean_f1 == pytest.approx((0.8 + 1 + 2 / 3 + 2 / 3) / 4)
    assert pair_scores(cands, keep, labels).mean_f1 == pytest.approx(expected.mean_f1)
    thresholds = np.array([0.4, 0.7, 0.85])
    sweep = threshold_sweep(cands, labels, cands.sims["tfidf"], thresholds)
    per_mask = [pair_scores(cands, keep_pairs(cands, Recipe({"tfidf": 1.0}, float(t))), labels).mean_f1
                for t in thresholds]
    np.testing.assert_allclose(sweep, per_mask)


def test_local_scale_subtracts_each_listings_crowd_relative_to_the_tuning_pool():
    # listing 0's candidates score 0.9, 0.5, 0.3; listing 1's 0.9 only
    cands = _pairs([0, 0, 0, 1, 2, 3], [1, 2, 3, 0, 0, 0], [0.9, 0.5, 0.3, 0.9, 0.5, 0.3], 4)
    score = cands.sims["tfidf"]
    np.testing.assert_allclose(kth_best(cands, score, 1), [0.9, 0.9, 0.5, 0.3])
    np.testing.assert_allclose(crowding(cands, score, 1), [0.9, 0.7, 0.6, 0.9, 0.7, 0.6])
    recipe = Recipe({"tfidf": 1.0}, 0.5, local_scale=LocalScale(1, 0.5, 0.6))
    np.testing.assert_allclose(recipe_score(cands, recipe), score - 0.5 * (crowding(cands, score, 1) - 0.6), atol=1e-6)
    assert recipe.name == "concat(tfidf)+local"
    # fewer than k candidates (a pool smaller than k + 1): not measured, so a pair keeps the side that is,
    # and a pool where no listing has k candidates keeps the fused score (Kaggle's 3-row test.csv)
    np.testing.assert_allclose(kth_best(cands, score, 2), [0.5, np.nan, np.nan, np.nan])
    np.testing.assert_allclose(crowding(cands, score, 2), [0.5] * 6)
    assert np.isnan(kth_best(cands, score, 9)).all()
    np.testing.assert_allclose(recipe_score(cands, recipe.replace(local_scale=LocalScale(9, 0.5, 0.6))), score)
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    with pytest.raises(ValueError, match="local_scale.k"):
        Recipe.from_dict({**recipe.to_dict(), "local_scale": {"k": 0, "alpha": 0.5, "offset": 0.6}})


def _families(seed=0, n_families=12, groups=8, per_group=3, dim=32):
    """Photo-only listings whose products come in families of look-alikes: a family's groups are close, so a
    pool holding more of a family's groups needs a stricter threshold."""
    rng = np.random.default_rng(seed)
    rows, vectors = [], []
    for f in range(n_families):
        family = rng.normal(size=dim)
        for g in range(groups):
            product = family + 0.55 * rng.normal(size=dim)
            for j in range(per_group):
                label = 1000 + f * groups + g
                rows.append({"posting_id": f"p{label}_{j}", "image": "", "title": "", "label_group": label,
                             "image_phash": "".join(rng.choice(list("0123456789abcdef"), 16)), "image_path": None})
                vectors.append(product + 0.35 * rng.normal(size=dim))
    return pd.DataFrame(rows), np.asarray(vectors, dtype=np.float32)


def test_a_fit_padded_to_the_test_pool_tunes_for_it_and_says_where_it_measured():
    train, vectors = _families(seed=0)
    test, test_vectors = _families(seed=1, n_families=36)        # three times train: many more look-alikes
    ok = np.ones(len(train), bool)
    base = OPTIONS.changed(title_model=None, grid=FAST, pair_classifier=False, blend=False, local_scale=False)
    small = fit_matcher(train, base, image_embeddings=(vectors, ok), progress=False)
    padded = fit_matcher(train, base.changed(pool_size=len(test)), image_embeddings=(vectors, ok), progress=False)
    assert padded.recipe.threshold > small.recipe.threshold
    pools = Selection.from_dict(padded.info["selection"]).pools
    assert pools["target"] == len(test) and pools["scored_in"] > pools["held_out_fold"]
    assert pools["final_tuned_in"] == len(train)                  # padded as far as train goes
    estimate = Selection.from_dict(padded.info["selection"]).estimate
    assert estimate["pool_size"] == pools["scored_in"]
    curve = Selection.from_dict(padded.info["selection"]).curve
    assert pools["curve_half"] == "B" and curve["pool"].max() == pools["scored_in"]     # half B inside all of train
    assert curve["pool"].min() < pools["scored_in"] / 1.5
    table = Selection.from_dict(padded.info["selection"]).table.set_index("steps")     # half B: folds 0 and 1
    full = curve[curve["pool"] == pools["scored_in"]].set_index("steps")["mean_f1"]
    for steps, f1 in full.items():      # the full-size point is the selection's own held-out score, not a rerun
        assert abs(f1 - table.loc[steps, ["fold_0", "fold_1"]].mean()) < 1e-3
    assert Selection.from_dict(small.info["selection"]).curve is None
    big = (test_vectors, np.ones(len(test), bool))
    f1 = {name: score_matches(m.predict(test, image_embeddings=big, progress=False), test["label_group"]).mean_f1
          for name, m in (("small", small), ("padded", padded))}
    assert f1["padded"] > f1["small"]


def test_the_local_scale_is_a_step_the_cross_fit_chooses_and_the_matcher_applies():
    train, vectors = _families(seed=0)
    ok = np.ones(len(train), bool)
    options = OPTIONS.changed(title_model=None, grid=FAST, pair_classifier=False, blend=False, local_scale=True,
                              pool_size=2 * len(train))
    matcher = fit_matcher(train, options, image_embeddings=(vectors, ok), progress=False)
    assert matcher.recipe.local_scale is not None and matcher.name.endswith("+local+min2")
    assert set(Selection.from_dict(matcher.info["selection"]).table["steps"]) == {"local scale"}
    test, test_vectors = _families(seed=1)
    signals = compute_signals(test, None, CFG.tfidf, (test_vectors, np.ones(len(test), bool)))
    cands = candidate_pairs(signals)
    expected = keep_pairs(cands, matcher.recipe)
    assert not np.array_equal(expected, keep_pairs(cands, matcher.recipe.replace(local_scale=None)))
    matches = matcher.predict(test, image_embeddings=(test_vectors, np.ones(len(test), bool)), progress=False)
    assert sum(len(m) for m in matches) == len(test) + int(np.minimum(
        np.bincount(cands.rows[expected], minlength=len(test)), 49).sum())


def test_the_pool_the_fit_tunes_for_is_test_csvs_size_unless_it_is_kaggles_stub():
    kaggle = replace(CFG, fusion=replace(CFG.fusion, pool_size=70_000))
    assert matcher_options(kaggle, 3).fusion.pool_size == 70_000          # the public 3-row test.csv
    assert matcher_options(kaggle, 9_957).fusion.pool_size == 9_957
    assert matcher_options(CFG, 3).fusion.pool_size is None
    assert matcher_options(CFG, 500).fusion.pool_size == 500


def test_the_answer_says_what_the_pool_size_costs():
    curve = [{"steps": "threshold rule", "pool": 6000, "mean_f1": 0.85, "std_f1": 0.01},
             {"steps": "threshold rule", "pool": 24000, "mean_f1": 0.80, "std_f1": 0.01}]
    text = pool_cost(curve, {"target": 70000, "scored_in": 24000})
    assert "0.850 with 6,000 listings → 0.800 with 24,000" in text and "70,000" in text
    assert "half B's held-out folds" in pool_cost(curve, {"target": 24000, "scored_in": 24000, "curve_half": "B"})
    assert pool_cost(None, None) == ""
