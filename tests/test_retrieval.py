"""The training-free embedding levers: known answers for whitening and flip TTA, and the lever study's choice."""

import numpy as np
import pytest

from samesame.core.neighbors import l2_normalize
from samesame.image.backbones import load_backbone
from samesame.image.embed import run_model
from samesame.image.retrieval import (Levers, Whitening, flip_average, lever_grid, lever_study, mirrored,
                                      query_expansion, with_flip_tta, with_whitening)


def test_whitening_of_the_fit_set_has_identity_covariance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12)) + 5.0
    white = Whitening.fit(x, dims=8, eps=0.0)
    z = (l2_normalize(x) - white.mean) @ white.projection
    np.testing.assert_allclose(np.cov(z, rowvar=False), np.eye(8), atol=1e-3)
    assert white.dims == 8


def test_whitening_keeps_unusable_rows_zero_and_survives_a_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 6)).astype(np.float32)
    ok = np.ones(50, bool)
    ok[:5] = False
    x[:5] = 0.0
    white = Whitening.fit(x, ok, dims=4)
    out = white.apply(x, ok)
    assert (out[:5] == 0).all() and np.allclose(np.linalg.norm(out[5:], axis=1), 1, atol=1e-5)
    white.save(tmp_path / "w.npz")
    np.testing.assert_array_equal(Whitening.load(tmp_path / "w.npz").apply(x, ok), out)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz: not a whitening file.*rerun 05"):
        Whitening.load(tmp_path / "bad.npz")


def test_whitening_needs_vectors_to_fit():
    with pytest.raises(ValueError, match="at least 3 usable vectors"):
        Whitening.fit(np.ones((5, 4)), np.zeros(5, bool))


def test_flip_tta_of_a_mirror_symmetric_image_equals_the_plain_embedding():
    backbone = load_backbone("random_lite0", input_size=64)
    rng = np.random.default_rng(2)
    half = rng.uniform(0, 255, size=(2, 64, 32, 3)).astype(np.float32)
    symmetric = np.concatenate([half, half[:, :, ::-1]], axis=2)
    plain = l2_normalize(run_model(backbone.model, symmetric))
    flipped = with_flip_tta(backbone)
    assert flipped.name == "random_lite0+flip" and flipped.dim == backbone.dim
    np.testing.assert_allclose(run_model(flipped.model, symmetric), plain, atol=1e-5)
    asymmetric = rng.uniform(0, 255, size=(2, 64, 64, 3)).astype(np.float32)
    assert not np.allclose(run_model(flipped.model, asymmetric), l2_normalize(run_model(backbone.model, asymmetric)),
                           atol=1e-4)
    # 05 embeds only the mirror images and averages them with the cached plain embeddings: the same vectors
    mirror = mirrored(backbone)
    assert mirror.name == "random_lite0+mirror"
    np.testing.assert_allclose(flip_average(run_model(backbone.model, asymmetric), run_model(mirror.model, asymmetric)),
                               run_model(flipped.model, asymmetric), atol=1e-5)
    np.testing.assert_array_equal(flip_average(np.zeros((1, 4)), np.zeros((1, 4))), np.zeros((1, 4)))


def test_whitening_as_keras_layers_equals_whitening_apply():
    backbone = load_backbone("random_lite0", input_size=64)
    images = np.random.default_rng(3).uniform(0, 255, size=(8, 64, 64, 3)).astype(np.float32)
    plain = run_model(backbone.model, images)
    white = Whitening.fit(plain, dims=5)
    whitened = with_whitening(backbone, white, "ab" * 32)
    assert whitened.dim == 5 and "whitening abababababab" in whitened.weights
    np.testing.assert_allclose(run_model(whitened.model, images), white.apply(plain), atol=1e-4)


def test_query_expansion_pulls_a_vector_towards_its_neighbour():
    x = np.array([[1.0, 0.0], [0.8, 0.6], [-1.0, 0.0]], dtype=np.float32)
    out = query_expansion(x, k=2, alpha=1.0)
    assert out[0] @ l2_normalize(x)[1] > l2_normalize(x)[0] @ l2_normalize(x)[1]
    np.testing.assert_allclose(query_expansion(x, k=1), l2_normalize(x))
    unusable = query_expansion(x, np.array([True, True, False]), k=2)
    np.testing.assert_allclose(unusable[2], l2_normalize(x)[2])


def _nuisance_data(seed: int, n_groups: int = 60, per_group: int = 4, dim: int = 24):
    """Groups whose identity lives in small directions, buried under large shared nuisance directions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, dim)) * 0.3
    labels = np.repeat(np.arange(n_groups), per_group)
    nuisance = rng.normal(size=(len(labels), 3)) @ rng.normal(size=(3, dim)) * 3.0
    x = centres[labels] + nuisance + rng.normal(size=(len(labels), dim)) * 0.05 + 10.0
    return x.astype(np.float32), labels


def test_lever_study_keeps_whitening_where_a_nuisance_dominates_and_never_ships_query_expansion():
    x, labels = _nuisance_data(0)
    ok = np.ones(len(x), bool)
    study = lever_study((x, ok), (x, ok), labels, grid=lever_grid(whiten_dims=(16,)), progress=False)
    table = study.table.set_index("levers")
    assert len(table) == 8 and {"fold_0", "fold_1", "fold_2", "std_f1", "train_mean_f1"} <= set(table.columns)
    assert study.chosen.whiten == 16 and study.chosen.query_expansion == 0 and not study.chosen.flip
    assert table.loc["PCA whitening 16", "mean_f1"] > table.loc["plain", "mean_f1"] + 0.05


def test_levers_are_named_and_costed():
    assert Levers().name == "plain" and Levers().cost == 0
    assert Levers(True, 256, 3).name == "flip TTA + PCA whitening 256 + query expansion 3"
    assert Levers(True, 256, 3).cost == 3


def test_lever_folds_are_drawn_anew_inside_a_train_split():
    """The train split keeps the groups whose split hash is high; folds from that same hash would leave one empty."""
    import pandas as pd

    from samesame.core.splits import split_by_group

    x, labels = _nuisance_data(1, n_groups=90)
    train, _ = split_by_group(pd.DataFrame({"label_group": labels}), 0.41, 0)
    keep = np.isin(labels, train["label_group"])
    ok = np.ones(keep.sum(), bool)
    study = lever_study((x[keep], ok), (x[keep], ok), labels[keep], grid=[Levers()], progress=False)
    assert (study.table[["fold_0", "fold_1", "fold_2"]] > 0).all(axis=None)
