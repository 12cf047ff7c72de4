"""Kaggle runs the submission notebook on a 3-row public test.csv: every recipe shape must match 0..3 listings
and pools where no pair reaches the pair classifier's floor, without a crash, every listing with itself."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from test_fusion import _listings

from samesame.core.metrics import score_matches
from samesame.match.candidates import MAX_SHARED, shared_limit
from samesame.match.matching import Matcher
from samesame.match.recipe import Recipe
from samesame.match.selection import fit_matcher
from samesame.run.settings import defaults

CFG = defaults()
OPTIONS = CFG.matcher_options

FAST = replace(CFG.tuning, pair_trees=20, pair_max_leaf_nodes=7)
UNRELATED = pd.DataFrame({"posting_id": ["a", "b", "c"], "image": ["a.jpg", "b.jpg", "c.jpg"],   # made up, like
                          "image_phash": ["0f1e2d3c4b5a6978", "f0e1d2c3b4a59687", "5a5a5a5aa5a5a5a5"],  # Kaggle's 3
                          "title": ["Tas Kertas Motif Bunga", "Lakban Busa Dua Sisi 12 mm x 5 m",
                                    "Sarden Kaleng Saus Tomat 425 gr"]})


def _image_vectors(df, dim=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(len(df), dim)).astype(np.float32), np.ones(len(df), bool)


@pytest.fixture(scope="module")
def matchers():
    df, _ = _listings(n_groups=40)
    images = _image_vectors(df)
    return {
        "rule": (fit_matcher(df, OPTIONS.changed(title_model=None, grid=FAST, pair_classifier=False), progress=False), False),
        "pair classifier": (fit_matcher(df, OPTIONS.changed(title_model=None, grid=FAST, pair_classifier=True), progress=False), False),
        "pair classifier + images": (fit_matcher(df, OPTIONS.changed(title_model=None, grid=FAST, pair_classifier=True), image_embeddings=images, progress=False), True),
    }


@pytest.mark.parametrize("shape", ["rule", "pair classifier", "pair classifier + images"])
@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_small_pools_match_every_listing_with_itself(matchers, shape, n):
    matcher, uses_images = matchers[shape]
    pool = UNRELATED.iloc[:n].reset_index(drop=True)
    matches = matcher.predict(pool, image_embeddings=_image_vectors(pool) if uses_images else None, progress=False)
    assert [m.tolist()[0] for m in matches] == list(range(n))
    assert all(len(m) >= 1 for m in matches)


def test_a_pool_where_no_pair_reaches_the_floor_leaves_everyone_alone(matchers):
    matcher, _ = matchers["pair classifier"]
    step = matcher.recipe.pair_classifier
    assert step.floor is not None
    matches = matcher.predict(UNRELATED, progress=False)     # unrelated titles: fused scores far below the floor
    assert [m.tolist() for m in matches] == [[0], [1], [2]]


def test_a_matcher_fitted_with_images_refuses_to_predict_without_them(matchers):
    matcher, _ = matchers["pair classifier + images"]
    with pytest.raises(ValueError, match="fitted with image similarities.*embed_for_matcher"):
        matcher.predict(UNRELATED, progress=False)


def test_a_frame_without_the_title_or_phash_column_is_refused_with_the_fix(matchers):
    matcher, _ = matchers["rule"]
    with pytest.raises(ValueError, match=r"no \['title'\] column.*load_dataset"):
        matcher.predict(UNRELATED.drop(columns="title"), progress=False)
    with pytest.raises(ValueError, match=r"no \['image_phash'\] column"):
        matcher.predict(UNRELATED.drop(columns="image_phash"), progress=False)


def _small_pool(n_groups=6, per_group=3, seed=2):
    df, _ = _listings(seed=seed, n_groups=n_groups, per_group=per_group)
    return df.drop(columns="label_group"), df["label_group"].to_numpy()


def test_shared_limit_is_relative_in_small_pools_and_as_before_in_large_ones():
    assert shared_limit(19, 3) == 9 and shared_limit(19, 12) == 12   # half the pool, never below train's largest
    assert shared_limit(2, 3) == 3                                   # a pool of one product's two listings matches
    assert shared_limit(400, 3) == shared_limit(70_000, 51) == MAX_SHARED
    assert shared_limit(19, None) == MAX_SHARED                      # train unknown: the absolute guard alone


@pytest.mark.parametrize("column, value, what", [
    ("title", "Produk Baru", r"title \(or its TF-IDF vector\)"),
    ("image_phash", "94974f937d4c2433", "image_phash"),
])
def test_a_value_shared_by_a_whole_small_pool_links_none_of_it(column, value, what):
    """19 identical titles (or one phash) across the tiny test's 19 listings matched them all (F1 0.921 -> 0.319):
    under the absolute 150-listing guard, so only a guard relative to the pool and to train's largest group sees it."""
    pool, _ = _small_pool()
    pool[column] = value
    matcher = Matcher(Recipe({"tfidf": 1.0}, 0.5, union={"phash": 0.9}), None, CFG.tfidf, info={"largest_group": 3})
    with pytest.warns(UserWarning, match=f"{what} shared by more listings than any product has \\(over 9: train's "
                                         "largest product has 3 listings, and the value holds more than 50% of this "
                                         f"pool of 18\\): '{value}' \\(18 listings\\); .*links none of them"):
        matches = matcher.predict(pool, progress=False)
    assert max(len(m) for m in matches) <= 3       # each listing with its own group at most, never the whole pool


def test_zero_width_titles_match_as_the_plain_titles_do():
    """A zero-width space between every letter merged every listing of the tiny test."""
    pool, labels = _small_pool()
    hidden = pool.assign(title=pool["title"].map("\u200b".join))
    matcher = Matcher(Recipe({"tfidf": 1.0}, 0.5), None, CFG.tfidf, info={"largest_group": 3})
    plain = matcher.predict(pool, progress=False)
    assert [m.tolist() for m in matcher.predict(hidden, progress=False)] == [m.tolist() for m in plain]
    assert max(len(m) for m in plain) <= 3 and score_matches(plain, labels).mean_precision > 0.9
