"""Fusion rules on hand-made candidate pairs, blending on a toy example, matcher round trips (synthetic)."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from samesame.core.metrics import score_matches
from samesame.match.ablation import ablation
from samesame.match.candidates import Candidates, Signals, blend_signals, candidate_pairs, compute_signals
from samesame.match.matching import Matcher, matches_from_pairs, searched_signals
from samesame.match.recipe import Blend, PairStep, Recipe, fused_score, keep_pairs, pair_scores
from samesame.match.selection import fit_matcher
from samesame.run.settings import defaults

CFG = defaults()
OPTIONS = CFG.matcher_options

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/shopee-dev"


def _cands(pairs, tfidf, phash=None, conflict=None, n=4):
    """Symmetric candidates from undirected (i, j) pairs with given similarities."""
    rows = np.array([i for i, j in pairs] + [j for i, j in pairs])
    cols = np.array([j for i, j in pairs] + [i for i, j in pairs])
    dup = lambda v: np.array(list(v) * 2, dtype=np.float32)
    sims = {"tfidf": dup(tfidf), "phash": dup(phash if phash is not None else [0.0] * len(pairs))}
    conf = np.array(list(conflict or [False] * len(pairs)) * 2)
    return Candidates(rows, cols, sims, conf, n)


def test_union_keeps_a_pair_either_signal_accepts():
    c = _cands([(0, 1), (2, 3)], tfidf=[0.9, 0.1], phash=[0.0, 0.95])
    only_text = {"weights": {"tfidf": 1.0}, "threshold": 0.5}
    union = {**only_text, "union": {"phash": 0.9}}
    assert keep_pairs(c, only_text).tolist() == [True, False, True, False]
    assert keep_pairs(c, union).all()


def test_unit_filter_drops_conflicting_title_matches_but_not_phash_ones():
    c = _cands([(0, 1), (2, 3)], tfidf=[0.9, 0.9], phash=[0.0, 0.95], conflict=[True, True])
    recipe = {"weights": {"tfidf": 1.0}, "threshold": 0.5, "unit_filter": True, "union": {"phash": 0.9}}
    assert keep_pairs(c, recipe).tolist() == [False, True, False, True]


def test_min2_adds_only_the_best_candidate_of_lonely_rows_above_the_loose_threshold():
    # row 0: candidates 1 (0.45) and 2 (0.40); row 3 only has 2 at 0.1 (too far)
    c = _cands([(0, 1), (0, 2), (2, 3)], tfidf=[0.45, 0.40, 0.1])
    strict = {"weights": {"tfidf": 1.0}, "threshold": 0.5}
    keep = keep_pairs(c, {**strict, "min2": 0.3})
    score = fused_score(c, strict["weights"])
    matches = matches_from_pairs(c, keep, score)
    assert matches[0].tolist() == [0, 1]
    assert matches[1].tolist() == [1, 0]        # 1 was alone too; its best candidate is 0
    assert matches[2].tolist() == [2, 0]        # 2's best is 0 (0.40), not 3 (0.1)
    assert matches[3].tolist() == [3]           # too far: stays alone
    assert [m.tolist() for m in matches_from_pairs(c, keep_pairs(c, strict), score)] == [[0], [1], [2], [3]]


def test_fused_score_ignores_missing_image_similarity():
    c = _cands([(0, 1)], tfidf=[0.6])
    c.sims["image"] = np.array([np.nan, np.nan], dtype=np.float32)
    assert fused_score(c, {"tfidf": 1.0, "image": 1.0})[0] == pytest.approx(0.6)
    c.sims["image"] = np.array([1.0, 1.0], dtype=np.float32)
    assert fused_score(c, {"tfidf": 1.0, "image": 1.0})[0] == pytest.approx(0.8)


def test_pair_scores_match_score_matches():
    c = _cands([(0, 1), (1, 2), (2, 3)], tfidf=[0.9, 0.8, 0.2])
    labels = np.array([7, 7, 8, 8])
    recipe = {"weights": {"tfidf": 1.0}, "threshold": 0.5}
    keep = keep_pairs(c, recipe)
    direct = score_matches(matches_from_pairs(c, keep, fused_score(c, recipe["weights"])), labels)
    assert pair_scores(c, keep, labels).mean_f1 == pytest.approx(direct.mean_f1)


def _title_pool(rows):
    """Unit title vectors of a few listings, their candidate pairs and title-only fused scores."""
    emb = np.array(rows, dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    signals = Signals({"title": emb}, np.zeros((len(emb), 8), np.uint8), {}, [{}] * len(emb))
    cands = candidate_pairs(signals, k=len(emb))
    return emb, signals, cands, fused_score(cands, {"title": 1.0})


def test_blending_pulls_a_noisy_member_towards_its_group():
    # rows 0,1,2 one product; row 2 is noisy (only 0.5 cosine to 0); row 3 another product
    emb, signals, cands, score = _title_pool([[1, 0, 0], [0.9, 0.436, 0], [0.5, 0.866, 0], [0, 0, 1]])
    blended = blend_signals(signals, cands, score, threshold=0.8, top=8).emb["title"]
    np.testing.assert_allclose(np.linalg.norm(blended, axis=1), 1.0, rtol=1e-5)
    assert blended[2] @ blended[0] > emb[2] @ emb[0]
    np.testing.assert_allclose(blended[3], emb[3], atol=1e-6)     # no neighbour above threshold: unchanged


def test_mutual_blending_ignores_a_neighbour_whose_own_best_lie_elsewhere():
    # 0 and 1 are a tight pair; 2 leans towards 0, but 0's single best neighbour is 1, so with top=1 only
    # the mutual pair 0-1 blends: 2 keeps its vector, whereas a one-way blend pulls 2 towards 0
    emb, signals, cands, score = _title_pool([[1, 0, 0], [0.99, 0.141, 0], [0.8, 0, 0.6], [0, 1, 0]])
    one_way = blend_signals(signals, cands, score, threshold=0.7, top=1).emb["title"]
    mutual = blend_signals(signals, cands, score, threshold=0.7, top=1, mutual=True).emb["title"]
    assert one_way[2] @ emb[0] > emb[2] @ emb[0] + 0.05
    np.testing.assert_allclose(mutual[2], emb[2], atol=1e-6)
    np.testing.assert_allclose(mutual[0], one_way[0], atol=1e-6)         # the mutual pair blends alike
    np.testing.assert_allclose(mutual[1], one_way[1], atol=1e-6)


def _listings(seed=0, n_groups=40, per_group=3):
    """Synthetic listings: a product word + a size, random filler; phash shared by half the groups."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        phash = "".join(rng.choice(list("0123456789abcdef"), 16))
        for j in range(per_group):
            filler = " ".join(rng.choice([f"kata{i}" for i in range(30)], 3, replace=False))
            own = phash if g % 2 == 0 else "".join(rng.choice(list("0123456789abcdef"), 16))
            rows.append({"posting_id": f"p{g}_{j}", "image": f"{g}_{j}.jpg", "image_phash": own,
                         "title": f"barang{g} {100 + g}gr {filler}", "label_group": 1000 + g, "image_path": None})
    return pd.DataFrame(rows), rng


def _check_matches(matches, n):
    assert len(matches) == n
    for i, m in enumerate(matches):
        assert m[0] == i and len(m) <= 50 and len(set(m.tolist())) == len(m)


@pytest.fixture(scope="module")
def encoder_cache(tmp_path_factory):
    """One title-encoder cache for the matchers fitted on ``_listings()``: the second fit loads the encoders the first
    trained (the same titles and settings), as a rerun of ``make fit`` does."""
    return str(tmp_path_factory.mktemp("title-encoders"))


def test_matcher_round_trip_without_images(encoder_cache):
    df, _ = _listings()
    matcher = fit_matcher(df, OPTIONS.changed(title_model=replace(CFG.title_encoder, train_layers=1, epochs=2, batch_size=32), pair_classifier=True), cache_dir=encoder_cache, progress=False)
    assert isinstance(matcher.recipe, Recipe) and matcher.recipe.pair_classifier is not None
    assert matcher.name.endswith("+pair_classifier")
    assert "title" in matcher.pair_classifier.feature_names
    test, _ = _listings(seed=1)
    matches = matcher.predict(test, progress=False)
    _check_matches(matches, len(test))
    assert score_matches(matches, test["label_group"]).mean_f1 > 0.8


def test_matcher_round_trip_with_partial_image_embeddings():
    df, rng = _listings()
    centres = rng.normal(size=(df["label_group"].nunique(), 12))
    vectors = (centres[df["label_group"] - 1000] + 0.1 * rng.normal(size=(len(df), 12))).astype(np.float32)
    ok = rng.random(len(df)) > 0.3
    vectors[~ok] = 0.0
    for wanted in (False, True):
        matcher = fit_matcher(df, OPTIONS.changed(title_model=None, pair_classifier=wanted), image_embeddings=(vectors, ok), progress=False)
        assert "image" in matcher.recipe.weights and (matcher.recipe.pair_classifier is not None) is wanted
        matches = matcher.predict(df, image_embeddings=(vectors, ok), progress=False)
        _check_matches(matches, len(df))
        with pytest.raises(ValueError, match="one row per listing"):
            matcher.predict(df, image_embeddings=(vectors[:5], ok[:5]), progress=False)
    with pytest.raises(ValueError, match="fitted with image similarities"):      # trained with image features
        matcher.predict(df, progress=False)


def test_unsearched_signal_still_scores_the_candidates():
    # title says 0~1 and 2~3; phash says nothing useful (all codes differ by many bits)
    emb = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    phash = np.array([[0] * 8, [255] * 8, [15] * 8, [240] * 8], dtype=np.uint8)
    signals = Signals({"title": emb}, phash, {}, [{}] * 4)
    cands = candidate_pairs(signals, k=2, search={"phash"})
    assert "title" in cands.sims and len(cands.rows) > 0
    assert candidate_pairs(signals, k=2, search={"title"}).sims["title"].min() == pytest.approx(1.0)


def test_searched_signals_skip_weight_zero_ones_but_keep_union_and_blend():
    recipe = Recipe({"tfidf": 1.0, "title": 0.0}, 0.5, union={"phash": 0.9},
                    blend=Blend({"tfidf": 1.0, "image": 0.5}, 0.6))
    assert searched_signals(recipe) == {"tfidf", "phash", "image"}


def test_matcher_needs_recipe_and_pair_classifier_together():
    with pytest.raises(ValueError, match="PairClassifier"):
        Matcher({"weights": {"tfidf": 1.0}, "threshold": 0.5, "pair_classifier": {"threshold": 0.5}}, None, CFG.tfidf)


def test_ablation_never_reads_val_labels():
    train, _ = _listings(seed=0, n_groups=60)
    val, _ = _listings(seed=2, n_groups=20)
    shuffled = val.assign(label_group=np.random.default_rng(0).permutation(val["label_group"].to_numpy()))
    table, recipes, _ = ablation(train, val, OPTIONS.changed(title_model=None), None, progress=False)
    table_s, recipes_s, _ = ablation(train, shuffled, OPTIONS.changed(title_model=None), None, progress=False)
    assert {"+pair classifier", "best"} <= set(table["method"])
    assert "image" not in set(table["method"])           # no image vectors, no image-only row
    assert set(recipes["+pair classifier"]) == {"A", "B"}                  # tuned in each half
    assert all(r.pair_classifier is not None for r in recipes["+pair classifier"].values())
    assert recipes == recipes_s
    assert not table["mean_f1"].equals(table_s["mean_f1"])


class _RecordingEncoder:
    """A stand-in title encoder: a fixed vector per product word, and a record of every title it embedded."""

    kind = "recording"

    def __init__(self):
        self.seen: set[str] = set()

    def embed(self, titles, progress=False):
        self.seen |= set(titles)
        rng = [np.random.default_rng(abs(hash(t.split()[0])) % 2**32) for t in titles]
        return np.stack([r.normal(size=8) for r in rng]).astype(np.float32) if titles else np.zeros((0, 8), np.float32)


def test_ablation_matches_each_half_with_the_other_halfs_encoder_and_within_that_half():
    from samesame.match.selection import in_half_a
    train, _ = _listings(seed=0, n_groups=40)
    val, _ = _listings(seed=2, n_groups=40)
    val = val.assign(label_group=val["label_group"] + 100)                # other groups than train's
    options = OPTIONS.changed(pair_classifier=False, blend=False, unit_filter=False)
    enc_a, enc_b = _RecordingEncoder(), _RecordingEncoder()
    table, recipes, predictions = ablation(train, val, options, None, (enc_a, enc_b), progress=False)
    a_train, a_val = in_half_a(train, options), in_half_a(val, options)
    assert 0 < a_train.sum() < len(train) and 0 < a_val.sum() < len(val)

    def titles(df, rows):
        return set(df.loc[rows, "title"])

    assert enc_a.seen == titles(train, ~a_train) | titles(val, ~a_val)    # A's encoder: half B only
    assert enc_b.seen == titles(train, a_train) | titles(val, a_val)
    assert "learned title" in set(table["method"])
    for matches in predictions.values():
        _check_matches(matches, len(val))
        assert all((a_val[m] == a_val[i]).all() for i, m in enumerate(matches))   # never across halves


def test_ablation_has_an_image_only_row_when_image_vectors_exist():
    """06 blames signals by their single-signal rows; without an "image" row it could never blame images."""
    rng = np.random.default_rng(3)
    train, _ = _listings(seed=0, n_groups=30)
    val, _ = _listings(seed=2, n_groups=12)

    def images(df):
        centres = {g: rng.normal(size=16) for g in df["label_group"].unique()}
        vectors = np.stack([centres[g] + 0.1 * rng.normal(size=16) for g in df["label_group"]]).astype(np.float32)
        return vectors, np.arange(len(df)) % 5 != 0            # every fifth listing has no usable image

    table, recipes, predictions = ablation(train, val, OPTIONS.changed(title_model=None), None, train_images=images(train), val_images=images(val), progress=False)
    assert all(r.weights == {"image": 1.0} for r in recipes["image"].values())
    assert table.set_index("method").loc["image", "mean_f1"] > 0.5 and len(predictions["image"]) == len(val)


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not (DATA / "train.csv").exists(), reason="real dev data absent")
def test_ablation_on_real_data_beats_tfidf_alone():
    from samesame.core.splits import split_by_group
    from samesame.data.listings import load_dataset

    train, val = split_by_group(load_dataset(DATA).train, test_fraction=0.41, seed=0)
    table, recipes, _ = ablation(train.iloc[:3000], val.iloc[:2000], OPTIONS.changed(title_model=None), None, progress=False)
    f1 = table.set_index("method")["mean_f1"]
    assert f1["best"] > f1["tfidf"]


def test_recipe_json_round_trip_and_unknown_keys():
    recipe = Recipe({"tfidf": 1.0, "phash": 0.25}, 0.61, {"phash": 0.9}, True, 0.3, Blend({"tfidf": 1.0}, 0.7, 8),
                    PairStep(0.42, 0.11, 0.2))
    assert Recipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe
    assert recipe.name == "blend(tfidf+phash)|phash+units+min2+pair_classifier"
    with pytest.raises(ValueError, match="unknown recipe keys.*rerank"):
        Recipe.from_dict({"weights": {"tfidf": 1.0}, "threshold": 0.5, "rerank": {}})


def test_saved_matcher_loads_and_gives_identical_matches(tmp_path, encoder_cache):
    df, rng = _listings()
    centres = rng.normal(size=(df["label_group"].nunique(), 12))
    vectors = (centres[df["label_group"] - 1000] + 0.3 * rng.normal(size=(len(df), 12))).astype(np.float32)
    ok = rng.random(len(df)) > 0.3
    matcher = fit_matcher(df, OPTIONS.changed(title_model=replace(CFG.title_encoder, train_layers=1, epochs=2, batch_size=32), pair_classifier=True), image_embeddings=(vectors, ok), cache_dir=encoder_cache, progress=False)
    matcher.info["train_sha256"] = "abc"
    folder = matcher.save(tmp_path / "matcher")
    assert {"recipe.json", "matcher.json", "title_encoder", "pair_classifier"} <= {p.name for p in folder.iterdir()}
    loaded = Matcher.load(folder)
    assert loaded.recipe == matcher.recipe and loaded.info == matcher.info and loaded.info["train_sha256"] == "abc"
    test, _ = _listings(seed=1)
    test_vectors = (centres[test["label_group"] - 1000] + 0.3 * rng.normal(size=(len(test), 12))).astype(np.float32)
    test_ok = np.ones(len(test), bool)
    np.testing.assert_array_equal(loaded.encoder.embed(test["title"].tolist()), matcher.encoder.embed(test["title"].tolist()))
    before = matcher.predict(test, image_embeddings=(test_vectors, test_ok), progress=False)
    after = loaded.predict(test, image_embeddings=(test_vectors, test_ok), progress=False)
    assert [m.tolist() for m in before] == [m.tolist() for m in after]
    matcher.save(folder)                           # saving again replaces the folder as a whole
    assert not (tmp_path / "matcher.tmp").exists()


def test_an_optional_step_must_win_in_most_group_folds_not_just_on_the_mean():
    from samesame.core.metrics import scores_from_counts
    from samesame.core.splits import group_folds
    from samesame.match.tuning import TuningPool

    labels = np.repeat(np.arange(200), 2)
    pool = TuningPool(None, None, None, labels, CFG.tuning, 0)
    folds = group_folds(labels, CFG.tuning.step_folds)
    base = scores_from_counts(np.full(400, 2), np.full(400, 2), np.ones(400, int))           # F1 0.5 everywhere
    lucky = scores_from_counts(np.full(400, 2), np.full(400, 2), np.where(folds == 0, 2, 1))  # one fold perfect
    broad = scores_from_counts(np.full(400, 1), np.full(400, 2), np.ones(400, int))           # F1 0.667 everywhere
    assert lucky.mean_f1 > base.mean_f1 and not pool.wins(lucky, base)
    assert pool.wins(broad, base) and not pool.wins(base, broad)


def test_tuning_grid_ranges_and_pair_classifier_settings_come_from_the_config():

    grid = replace(CFG.tuning, thresholds=(0.5, 0.6, 0.05), pair_trees=7, pair_max_leaf_nodes=5)
    np.testing.assert_allclose(grid.threshold_values, [0.5, 0.55, 0.6])
    assert CFG.tuning.threshold_values[[0, -1]].tolist() == [0.2, 0.95] and len(CFG.tuning.threshold_values) == 76
    clf = grid.pair_classifier(seed=3)
    assert (clf.max_iter, clf.max_leaf_nodes, clf.seed) == (7, 5, 3)
    df, _ = _listings()
    matcher = fit_matcher(df, OPTIONS.changed(title_model=None, pair_classifier=False, grid=replace(CFG.tuning, thresholds=(0.5, 0.6, 0.05), weights=(0.0, 1.0))), progress=False)
    assert matcher.recipe.threshold in (0.5, 0.55, 0.6)
    assert set(matcher.recipe.weights.values()) <= {0.0, 1.0}


def test_a_tuning_pool_tunes_each_rule_once_and_as_a_fresh_pool_would():
    """The selection asks one pool for several step configurations; each distinct one is tuned once, and the
    answer is the one a fresh pool gives (no configuration is served another's recipe)."""
    from samesame.match.tuning import TuningPool

    df, _ = _listings(n_groups=40)

    def fresh():
        return TuningPool.of(df, None, None, CFG.tfidf, CFG.tuning, 0)

    shared, rule = fresh(), dict(concat=["tfidf", "phash"], union_phash=True, min2=True)
    plain = shared.tune(**rule, unit_filter=False, blend=False)
    assert shared.tune(**rule, unit_filter=False, blend=False) is plain
    for unit_filter, blend in [(False, True), (True, True), (True, False), (None, None)]:
        assert shared.tune(**rule, unit_filter=unit_filter, blend=blend) == \
            fresh().tune(**rule, unit_filter=unit_filter, blend=blend)
    assert shared.tune(**rule, unit_filter=True, blend=False).unit_filter and not plain.unit_filter
    assert candidate_pairs(shared.signals) is shared.cands          # the pool's candidates are found again
    blended = blend_signals(shared.signals, shared.cands, fused_score(shared.cands, plain.weights), plain.threshold)
    assert candidate_pairs(blended) is not shared.cands              # blended signals search anew


def test_a_blend_is_computed_once_per_pool_and_as_a_fresh_one_would_be():
    """'blend' and 'blend + pair classifier' share their blend on a held-out pool: the second finds the first's
    blended candidates, which equal a fresh blend; a blend the tuning dropped is forgotten."""
    from samesame.match.matching import blended, forget_blend, pool_candidates

    df, _ = _listings(n_groups=40)
    signals = compute_signals(df, None, CFG.tfidf)
    recipe = Recipe({"tfidf": 1.0}, 0.5, union={"phash": 0.9},
                    blend=Blend({"tfidf": 1.0}, 0.6, 8))
    first = pool_candidates(signals, recipe)
    again = pool_candidates(signals, recipe)
    assert again[1] is first[1] and np.array_equal(again[2], first[2])
    fresh = pool_candidates(compute_signals(df, None, CFG.tfidf), recipe)
    assert np.array_equal(fresh[1].cols, first[1].cols) and fresh[1].sims.keys() == first[1].sims.keys()
    for name in fresh[1].sims:
        np.testing.assert_array_equal(fresh[1].sims[name], first[1].sims[name])
    cands = candidate_pairs(signals, search=recipe.searched_signals())
    assert blended(signals, cands, recipe.blend, search=recipe.searched_signals())[1] is first[1]
    forget_blend(signals, recipe.blend, search=recipe.searched_signals())
    assert pool_candidates(signals, recipe)[1] is not first[1]


TITLES_AND_PHASH = Recipe({"tfidf": 1.0}, 0.5, union={"phash": 0.9})


def test_a_phash_shared_by_a_crowd_links_none_of_them_and_says_how_many():
    """Every test.csv phash set to a placeholder used to merge unrelated listings (mean F1 0.80 -> 0.45)."""
    df, _ = _listings(n_groups=60)
    df["image_phash"] = "0000000000000000"
    with pytest.warns(UserWarning, match=r"image_phash shared by more listings than any product has \(over 150\): "
                                         r"'0000000000000000' \(180 listings\)"):
        matches = Matcher(TITLES_AND_PHASH, None, CFG.tfidf).predict(df, progress=False)
        titles_only = Matcher(Recipe({"tfidf": 1.0}, 0.5), None, CFG.tfidf).predict(df, progress=False)
    assert [m.tolist() for m in matches] == [m.tolist() for m in titles_only]


def test_a_title_shared_by_a_crowd_matches_none_of_them():
    df, _ = _listings(n_groups=60)
    df["title"] = "Produk Baru"
    with pytest.warns(UserWarning, match=r"title \(or its TF-IDF vector\) shared by .*'Produk Baru' \(180 listings\)"):
        matches = Matcher(TITLES_AND_PHASH, None, CFG.tfidf).predict(df, progress=False)
    assert max(len(m) for m in matches) <= 3      # only a group's shared phash links it (half the groups)


def test_a_listing_without_a_phash_is_matched_by_its_title():
    """A frame read with plain pd.read_csv has NaN for an empty image_phash: it crashed in bytes.fromhex."""
    df, _ = _listings(n_groups=10)
    df.loc[0, "image_phash"] = np.nan
    with pytest.warns(UserWarning, match="1 of 30 listings have no image_phash: they are matched without it"):
        matches = Matcher(TITLES_AND_PHASH, None, CFG.tfidf).predict(df, progress=False)
    assert set(matches[0].tolist()) == {0, 1, 2}


def test_image_embeddings_of_another_width_than_the_fit_are_refused_with_the_fix():
    df, _ = _listings(n_groups=10)
    matcher = Matcher(TITLES_AND_PHASH, None, CFG.tfidf, info={"image_dim": 1280})
    with pytest.raises(ValueError, match=r"7-d, but this matcher .* fitted on 1280-d .*embed_for_matcher"):
        matcher.predict(df, image_embeddings=(np.zeros((30, 7), np.float32), np.ones(30, bool)), progress=False)


def test_image_embeddings_that_are_not_a_pair_are_refused_with_the_fix():
    df, _ = _listings(n_groups=10)
    with pytest.raises(ValueError, match=r"image_embeddings is ndarray of shape \(30,\): pass \(vectors \(n, d\), "
                                         r"ok \(n,\)\) for the n=30 listings.*embed_for_matcher"):
        Matcher(TITLES_AND_PHASH, None, CFG.tfidf).predict(df, image_embeddings=np.zeros(30), progress=False)


def test_a_missing_title_is_an_empty_one_with_a_warning_never_the_word_nan():
    """str(NaN) made every missing title the word "nan", and those listings matched one another."""
    df, _ = _listings(n_groups=10)
    df.loc[[0, 4, 8], "title"] = np.nan
    with pytest.warns(UserWarning, match=r"3 of 30 titles are missing \(NaN or None; the first at row 0\): they are "
                                         "matched as empty titles"):
        signals = compute_signals(df, None, CFG.tfidf)
    assert [signals.titles[i] for i in (0, 4, 8)] == ["", "", ""]
    assert signals.emb["tfidf"][[0, 4, 8]].nnz == 0


def test_image_vectors_of_nan_are_matched_without_the_image_and_said_so():
    df, rng = _listings(n_groups=10)
    vectors, ok = rng.normal(size=(30, 8)).astype(np.float32), np.ones(30, bool)
    vectors[[3, 7]] = np.nan
    vectors[9] = 0.0
    with pytest.warns(UserWarning, match=r"3 of 30 listings with an image have NaN, infinite or all-zero image "
                                         r"vectors \(the first at row 3\): they are matched without the image signal"):
        signals = compute_signals(df, None, CFG.tfidf, (vectors, ok))
    assert np.flatnonzero(~signals.usable["image"]).tolist() == [3, 7, 9]
    assert np.isfinite(signals.emb["image"]).all()
