"""Title normalisation, quantities/unit conflicts, TF-IDF and the learned ArcFace encoder (toy data)."""

import numpy as np
import pytest

from samesame.neighbors import knn
from samesame.text import (ArcFaceConfig, TfidfConfig, TitleEncoder, normalize_title, quantities,
                           tfidf_embeddings, unit_conflict)


@pytest.mark.parametrize("raw, expected", [
    ("Susu 200GR x2 (1,5 Kg)", "susu 200 gr x 2 1.5 kg"),
    ("Gula 200 gram", "gula 200 gr"),
    ("Gula 200g", "gula 200 gr"),
    ("Toner 100ml/botol", "toner 100 ml botol"),
    ("MASKER 3PLY isi 50pcs!!", "masker 3 ply isi 50 pcs"),
    ("\uff21\uff22\uff23 500Mah", "abc 500 mah"),          # full-width letters folded by NFKC
])
def test_normalize_title_known_answers(raw, expected):
    assert normalize_title(raw) == expected


def test_quantities_reads_decimals_and_ignores_non_units():
    assert quantities("susu 200 gr x 2 1.5 kg") == {"gr": frozenset({200.0}), "kg": frozenset({1.5})}
    assert quantities("buy 9 get 10 free") == {}


@pytest.mark.parametrize("a, b, conflict", [
    ("kopi 200 gr", "kopi 400 gr", True),
    ("kopi 200 gr", "kopi 200 gr sachet", False),
    ("kopi 200 gr", "kopi 1 kg", False),          # different units: no evidence either way
    ("kopi 200 gr 400 gr", "kopi 400 gr", False),  # a shared amount means a shared variant
    ("kopi", "kopi 400 gr", False),
])
def test_unit_conflict_known_answers(a, b, conflict):
    assert unit_conflict(quantities(a), quantities(b)) is conflict


def test_tfidf_rows_are_unit_length_and_units_unify():
    x = tfidf_embeddings(["Gula 200gr", "gula 200 gram", "sabun cair"], TfidfConfig(char_weight=0.5))
    norms = np.sqrt(np.asarray(x.multiply(x).sum(1)).ravel())
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    assert (x[0] @ x[1].T).toarray()[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert (x[0] @ x[2].T).toarray()[0, 0] < 0.5


def test_tfidf_needs_some_part():
    with pytest.raises(ValueError, match="word_weight"):
        tfidf_embeddings(["a b"], TfidfConfig(word_weight=0, char_weight=0))


def _toy_groups(rng, n_groups=30, per_group=4):
    """Each group: a distinctive product word + shared brand noise; titles differ by random filler words."""
    filler = [f"promo{i}" for i in range(40)]
    titles, labels = [], []
    for g in range(n_groups):
        for _ in range(per_group):
            noise = " ".join(rng.choice(filler, 4, replace=False))
            titles.append(f"produk{g} varian{g % 7} {noise}")
            labels.append(g)
    return titles, np.array(labels)


def _neighbour_accuracy(emb, labels):
    _, idx = knn(emb, 2)
    return float(np.mean(labels[idx[:, 1]] == labels))


def test_encoder_trains_and_beats_its_initial_state():
    rng = np.random.default_rng(0)
    titles, labels = _toy_groups(rng)
    cfg = ArcFaceConfig(svd_dim=32, hidden=64, dim=16, epochs=40, batch_size=32, max_features=2000)
    untrained = TitleEncoder(cfg)
    untrained.features(titles, fit=True)
    from samesame.text import _build_encoder
    untrained.model = _build_encoder(cfg.svd_dim, cfg)
    encoder = TitleEncoder(cfg).fit(titles, labels, progress=False)
    assert encoder.history[-1] < encoder.history[0]
    emb = encoder.embed(titles)
    assert emb.shape == (len(titles), 16)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-4)
    assert _neighbour_accuracy(emb, labels) > _neighbour_accuracy(untrained.embed(titles), labels)


def test_encoder_embed_before_fit_says_what_to_do():
    with pytest.raises(RuntimeError, match="fit"):
        TitleEncoder().embed(["a"])
