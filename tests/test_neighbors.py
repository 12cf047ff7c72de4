import numpy as np
import pytest
import scipy.sparse as sp

from samesame.core.metrics import score_matches
from samesame.core.neighbors import (best_threshold, knn, l2_normalize, matches_from_knn, sweep_thresholds,
                                     tune_threshold)


@pytest.fixture
def emb():
    return np.random.default_rng(1).normal(size=(300, 16)).astype(np.float32)


def test_cosine_matches_brute_force(emb):
    dist, idx = knn(emb, k=5, metric="cosine")
    x = l2_normalize(emb)
    sims = x @ x.T
    expected = np.argsort(-sims, axis=1)[:, :5]
    np.testing.assert_array_equal(idx[:, 0], np.arange(len(emb)))
    np.testing.assert_array_equal(np.sort(idx, axis=1), np.sort(expected, axis=1))
    np.testing.assert_allclose(dist[:, 1], 1 - np.take_along_axis(sims, expected[:, 1:2], 1)[:, 0], atol=1e-5)


def test_euclidean_matches_brute_force(emb):
    dist, idx = knn(emb, k=3, metric="euclidean")
    d = np.linalg.norm(emb[:, None] - emb[None], axis=2)
    np.testing.assert_allclose(dist[:, 1], np.sort(d, axis=1)[:, 1], rtol=1e-4)


def test_hamming_codes():
    codes = np.array([[0] * 8, [0] * 7 + [0b111], [255] * 8], dtype=np.uint8)
    dist, idx = knn(codes, k=3, metric="hamming")
    assert idx[0].tolist() == [0, 1, 2] and dist[0].tolist() == [0, 3, 64]


def test_sparse_cosine_agrees_with_dense(emb):
    x = np.where(emb > 0.8, emb, 0)
    ds, is_ = knn(sp.csr_matrix(l2_normalize(x)), k=4, chunk=64)
    dd, id_ = knn(x, k=4)
    np.testing.assert_allclose(ds, dd, atol=1e-5)


def test_self_is_first_even_with_exact_duplicates():
    x = np.ones((4, 3), dtype=np.float32)
    dist, idx = knn(x, k=4)
    assert idx[:, 0].tolist() == [0, 1, 2, 3]
    assert all(sorted(r) == [0, 1, 2, 3] for r in idx.tolist())


def test_k_larger_than_n_is_clipped():
    dist, idx = knn(np.eye(3, dtype=np.float32), k=50)
    assert idx.shape == (3, 3)


def test_unknown_metric():
    with pytest.raises(ValueError, match="unknown metric"):
        knn(np.eye(3), metric="manhattan")


def test_threshold_cuts_rows_and_keeps_self():
    dist = np.array([[0, 0.1, 0.5], [0, 0.2, 0.9]], dtype=np.float32)
    idx = np.array([[0, 1, 2], [1, 0, 2]])
    m = matches_from_knn(dist, idx, 0.15)
    assert [a.tolist() for a in m] == [[0, 1], [1]]
    assert [a.tolist() for a in matches_from_knn(dist, idx, -1)] == [[0], [1]]


def test_sweep_agrees_with_scoring_the_matches(emb):
    labels = np.repeat(np.arange(100), 3)
    emb = emb + 3 * np.repeat(np.random.default_rng(2).normal(size=(100, 16)), 3, axis=0)
    dist, idx = knn(emb, k=20)
    sweep = sweep_thresholds(dist, idx, labels, [0.05, 0.2, 0.5])
    for t, f1 in zip(sweep["threshold"], sweep["mean_f1"]):
        assert f1 == pytest.approx(score_matches(matches_from_knn(dist, idx, t), labels).mean_f1, abs=1e-4)
    assert best_threshold(sweep) == sweep.loc[sweep.mean_f1.idxmax(), "threshold"]


def test_tune_threshold_chooses_on_train_only():
    dist = np.array([[0, 0.3], [0, 0.3]], dtype=np.float32)
    idx = np.array([[0, 1], [1, 0]])
    tuned = tune_threshold((dist, idx), [1, 1], (dist, idx), [1, 2], [0.1, 0.5])
    assert tuned.threshold == 0.5  # train wants the pair matched, though test would prefer 0.1
    assert tuned.summary()["test_mean_f1"] < tuned.summary()["train_mean_f1"]
