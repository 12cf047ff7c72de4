"""The shipped recipe's optional steps are chosen by cross-fitting over label groups, and the matcher has exactly them."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from test_fusion import _listings

from samesame.core.metrics import score_matches
from samesame.match.ablation import ablation
from samesame.match.candidates import dropped_signals
from samesame.match.selection import Selection, Steps, _best, fit_matcher
from samesame.run.settings import defaults

CFG = defaults()
OPTIONS = CFG.matcher_options

FAST = replace(CFG.tuning, pair_trees=20, pair_max_leaf_nodes=7)


def _steps_of(matcher) -> Steps:
    r = matcher.recipe
    return Steps(r.unit_filter, r.blend is not None, r.pair_classifier is not None, r.local_scale is not None)


def test_the_matcher_ships_the_configuration_with_the_best_held_out_mean():
    df, _ = _listings(n_groups=60)
    matcher = fit_matcher(df, OPTIONS.changed(title_model=None, grid=FAST), progress=False)
    selection = Selection.from_dict(matcher.info["selection"])
    table = selection.table.set_index("steps")
    names = ["threshold rule", "unit filter", "blend", "unit filter+blend"]
    names += [f"{n}+local scale" if n != "threshold rule" else "local scale" for n in names]
    assert set(names) <= set(table.index)
    assert [c for c in table.columns if c.startswith("fold_")] == ["fold_0", "fold_1", "fold_2", "fold_3"]
    rules = table.loc[names, "mean_f1"]
    assert _steps_of(matcher) == selection.chosen
    assert matcher.info["largest_group"] == df["label_group"].value_counts().max()   # the shared-value bound
    chosen_rule = replace(selection.chosen, pair_classifier=False).name
    assert rules[chosen_rule] >= rules.max() - 1e-4           # the rule's steps: best held-out mean
    assert table["mean_f1"].between(0, 1).all() and (table["std_f1"] >= 0).all()
    estimate = selection.estimate
    assert estimate["folds"] == 4 and estimate["mean_f1"] == pytest.approx(table.loc[selection.chosen.name, "mean_f1"])
    np.testing.assert_allclose(table.loc[selection.chosen.name, [f"fold_{i}" for i in range(4)]].std(ddof=0),
                               estimate["std_f1"], atol=1e-4)


def test_a_step_fixed_by_the_config_is_not_chosen():
    df, _ = _listings(n_groups=60)
    forced = fit_matcher(df, OPTIONS.changed(title_model=None, grid=FAST, unit_filter=False, blend=False, local_scale=False, pair_classifier=True), progress=False)
    assert _steps_of(forced) == Steps(False, False, True)
    assert set(Selection.from_dict(forced.info["selection"]).table["steps"]) == {"threshold rule", "pair classifier"}
    never = fit_matcher(df, OPTIONS.changed(title_model=None, grid=FAST, unit_filter=True, blend=False, local_scale=False, pair_classifier=False), progress=False)
    assert _steps_of(never) == Steps(True, False, False)
    assert set(Selection.from_dict(never.info["selection"]).table["steps"]) == {"unit filter"}


def test_a_tie_keeps_the_simpler_recipe_and_a_real_gain_wins():
    scores = {"threshold rule": [{"mean_f1": 0.8}] * 4, "unit filter": [{"mean_f1": 0.80005}] * 4,
              "blend": [{"mean_f1": 0.9}] * 4}
    assert _best([Steps(), Steps(unit_filter=True)], scores) == Steps()
    assert _best([Steps(), Steps(unit_filter=True), Steps(blend=True)], scores) == Steps(blend=True)


def test_too_few_groups_to_cross_fit_is_a_clear_error():
    df, _ = _listings(n_groups=2)
    with pytest.raises(ValueError, match="too few to cross-fit") as err:
        fit_matcher(df, OPTIONS.changed(title_model=None, grid=FAST), progress=False)
    assert "image model" not in str(err.value)       # no image model was involved: do not blame it


def test_ablation_best_row_has_the_shipped_steps():
    train, _ = _listings(seed=0, n_groups=40)
    val, _ = _listings(seed=2, n_groups=15)
    _, recipes, _ = ablation(train, val, OPTIONS.changed(title_model=None, grid=FAST), Steps(True, False, True), progress=False)
    for best in recipes["best"].values():
        assert best.unit_filter and best.blend is None and best.pair_classifier is not None


def test_image_only_data_fits_and_matches_without_a_title_signal():
    """Every title empty (a photo-only set): no TF-IDF, no title encoder, images and phash carry the match."""
    df, rng = _listings(n_groups=50)
    centres = rng.normal(size=(df["label_group"].nunique(), 16))
    vectors = (centres[df["label_group"] - 1000] + 0.2 * rng.normal(size=(len(df), 16))).astype(np.float32)
    ok = np.ones(len(df), bool)
    photos = df.assign(title="")
    matcher = fit_matcher(photos, OPTIONS.changed(grid=FAST), image_embeddings=(vectors, ok), progress=False)
    assert matcher.encoder is None and "tfidf" not in matcher.recipe.weights and "image" in matcher.recipe.weights
    selection = Selection.from_dict(matcher.info["selection"])      # no title, no unit: the filter is not tried
    assert "unit filter" in selection.skipped and not selection.table["steps"].str.contains("unit").any()
    matches = matcher.predict(photos, image_embeddings=(vectors, ok), progress=False)
    assert len(matches) == len(photos) and score_matches(matches, photos["label_group"]).mean_f1 > 0.8


def test_a_handful_of_photos_among_titled_listings_is_left_out_of_the_fit_with_a_warning():
    """A csv-only Kaggle folder with a few photos (shopee-dev: 20 of 24,293): the image signal cannot be tuned."""
    df, rng = _listings(n_groups=70, per_group=3)                 # 210 listings: 1% is 2.1
    vectors = rng.normal(size=(len(df), 8)).astype(np.float32)
    options = OPTIONS.changed(title_model=None, grid=FAST, unit_filter=False, blend=False, local_scale=False,
                              pair_classifier=True)
    few = np.zeros(len(df), bool)
    few[:2] = True
    with pytest.warns(UserWarning, match="only 2 of 210 train listings have a usable image"):
        matcher = fit_matcher(df, options, image_embeddings=(vectors, few), progress=False)
    assert not matcher.uses_images() and "image" not in matcher.recipe.weights
    assert "2 of 210" in matcher.info["images_left_out"]
    assert len(matcher.predict(df, progress=False)) == len(df)          # no image vectors needed to match
    with_photos = matcher.predict(df, image_embeddings=(vectors, few), progress=False)   # given, they are not read
    assert [m.tolist() for m in with_photos] == [m.tolist() for m in matcher.predict(df, progress=False)]
    enough = few.copy()
    enough[2] = True                                                   # 3 of 210 >= 1%: tuned like any signal
    kept = fit_matcher(df, options, image_embeddings=(vectors, enough), progress=False)
    assert "images_left_out" not in kept.info and "image" in kept.recipe.weights


def test_title_only_data_fits_and_matches_without_images():
    df, _ = _listings(n_groups=50)
    matcher = fit_matcher(df.assign(image_path=None), OPTIONS.changed(title_model=None, grid=FAST), progress=False)
    assert "image" not in matcher.recipe.weights and not matcher.uses_images()
    assert len(matcher.predict(df, progress=False)) == len(df)


def test_selection_round_trips_through_json():
    table = pd.DataFrame([{"steps": "unit filter", "fold_0": 0.8, "fold_1": 0.9, "mean_f1": 0.85, "std_f1": 0.05,
                           "mean_precision": 0.9, "mean_recall": 0.8}])
    curve = pd.DataFrame([{"steps": "unit filter", "pool": 100, "mean_f1": 0.9, "std_f1": 0.01},
                          {"steps": "unit filter", "pool": 400, "mean_f1": 0.85, "std_f1": 0.05}])
    selection = Selection(table, Steps(unit_filter=True), {"pair classifier": "one class only"},
                          {"target": 1000, "scored_in": 400}, curve)
    again = Selection.from_dict(json.loads(json.dumps(selection.to_dict())))
    assert again.chosen == selection.chosen and again.skipped == selection.skipped and again.pools == selection.pools
    assert again.estimate == {"mean_f1": 0.85, "std_f1": 0.05, "mean_precision": 0.9, "mean_recall": 0.8, "folds": 2,
                              "pool_size": 400}
    pd.testing.assert_frame_equal(again.curve, curve)
    assert Selection.from_dict(Selection(table, Steps(unit_filter=True)).to_dict()).curve is None


def test_dropped_signals_name_what_is_missing_and_why():
    df, _ = _listings(n_groups=5)
    assert dropped_signals(df, (np.ones((len(df), 4), np.float32), np.ones(len(df), bool))) == {}
    photos = dropped_signals(df.assign(title=""), (np.ones((len(df), 4), np.float32), np.ones(len(df), bool)))
    assert photos == {"tfidf": f"every one of the {len(df)} titles is empty",
                      "title": f"every one of the {len(df)} titles is empty"}
    assert dropped_signals(df) == {"image": "no image vectors (image.in_fusion is false)"}
    one = np.zeros(len(df), bool)
    one[0] = True
    assert dropped_signals(df, (np.ones((len(df), 4), np.float32), one))["image"].startswith("1 of 15 listings")


def test_groups_a_fine_tuned_image_model_trained_on_are_left_out_of_the_recipe_tuning_and_its_estimate():
    """Memorised groups (image vectors identical within the group) would make images look perfect; the estimate and
    the threshold must come from the groups the image model never saw (noisy vectors), as unseen test groups are."""
    df, rng = _listings(n_groups=80)
    photos = df.assign(title="", image_phash="0" * 16)     # images carry the match alone
    groups = photos["label_group"].to_numpy() - 1000
    centres = rng.normal(size=(80, 16))
    noisy = centres[groups] + 0.9 * rng.normal(size=(len(df), 16))
    seen = np.arange(80)[::2] + 1000                        # half the groups: the image model trained on them
    memorised = np.where(np.isin(photos["label_group"], seen)[:, None], centres[groups], noisy).astype(np.float32)
    ok = np.ones(len(df), bool)
    naive = fit_matcher(photos, OPTIONS.changed(grid=FAST, pair_classifier=False), image_embeddings=(memorised, ok), progress=False)
    honest = fit_matcher(photos, OPTIONS.changed(grid=FAST, pair_classifier=False), image_embeddings=(memorised, ok), image_seen_groups=seen, progress=False)
    truth = fit_matcher(photos.loc[~np.isin(photos["label_group"], seen)].reset_index(drop=True), OPTIONS.changed(grid=FAST, pair_classifier=False), image_embeddings=(noisy[~np.isin(photos["label_group"], seen)].astype(np.float32),
                                          ok[: (~np.isin(photos["label_group"], seen)).sum()]), progress=False)
    estimate = lambda m: Selection.from_dict(m.info["selection"]).estimate["mean_f1"]   # noqa: E731
    assert estimate(naive) > estimate(honest) + 0.05          # memorised groups inflate the naive estimate
    assert estimate(honest) == pytest.approx(estimate(truth))  # the honest one is the unseen groups' alone
    assert honest.info["tuning_groups"] == {"tuned and scored on": 40, "left out (the image model trained on them)": 40}
    assert naive.info["tuning_groups"]["left out (the image model trained on them)"] == 0
    with pytest.raises(ValueError, match="never trained on .* too few to cross-fit"):
        fit_matcher(photos, OPTIONS.changed(grid=FAST), image_embeddings=(memorised, ok), image_seen_groups=np.arange(1, 80) + 1000, progress=False)
