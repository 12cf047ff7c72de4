"""ArcFace head: known-answer logits, margin 0 = scaled cosine softmax, safe gradients, save/load."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from samesame.core.arcface import ArcFace, L2Normalize, ramped_margin

DEG = math.pi / 180


def head(centres: np.ndarray, scale: float, margin: float, **kwargs) -> ArcFace:
    """An ArcFace layer whose class centres are the columns of ``centres`` (dim, n_classes)."""
    layer = ArcFace(centres.shape[1], scale=scale, margin=margin, **kwargs)
    layer.build([(None, centres.shape[0]), (None,)])
    layer.centres.assign(centres)
    return layer


# three class centres on the unit circle at 0, 90 and 180 degrees, deliberately not unit length
CENTRES = np.array([[3.0, 0.0, -0.5], [0.0, 2.0, 0.0]], dtype=np.float32)
EMB = np.array([[2 * math.cos(30 * DEG), 2 * math.sin(30 * DEG)]], dtype=np.float32)  # at 30 degrees, norm 2


def test_logits_known_answer_target_gets_angular_margin():
    logits = np.asarray(head(CENTRES, 10.0, 0.5)([EMB, np.array([0])]))[0]
    # target (class 0, 30 degrees away): s*cos(theta + m); others: s*cos(theta)
    expected = [10 * math.cos(30 * DEG + 0.5), 10 * math.cos(60 * DEG), 10 * math.cos(150 * DEG)]
    np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_target_past_pi_uses_monotonic_fallback():
    # class 2 is 150 degrees away: 150 deg + 0.6 rad (34 deg) > 180 deg, so cos(theta+m) would rise again
    logits = np.asarray(head(CENTRES, 10.0, 0.6)([EMB, np.array([2])]))[0]
    cos = math.cos(150 * DEG)
    np.testing.assert_allclose(logits[2], 10 * (cos - math.sin(math.pi - 0.6) * 0.6), atol=1e-5)
    assert logits[2] < 10 * cos  # still a penalty
    np.testing.assert_allclose(logits[:2], [10 * math.cos(30 * DEG), 10 * math.cos(60 * DEG)], atol=1e-5)


def test_easy_margin_leaves_obtuse_targets_alone():
    logits = np.asarray(head(CENTRES, 10.0, 0.6, easy_margin=True)([EMB, np.array([2])]))[0]
    np.testing.assert_allclose(logits[2], 10 * math.cos(150 * DEG), atol=1e-5)


def test_margin_zero_is_scaled_cosine_softmax():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(6, 5)).astype(np.float32)
    centres = rng.normal(size=(5, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 0, 1])
    logits = np.asarray(head(centres, 16.0, 0.0)([emb, labels]))
    cos = (emb / np.linalg.norm(emb, axis=1, keepdims=True)) @ (centres / np.linalg.norm(centres, axis=0))
    np.testing.assert_allclose(logits, 16.0 * cos, atol=1e-5)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert float(loss(labels, logits)) == pytest.approx(float(loss(labels, 16.0 * cos)), abs=1e-5)


def test_set_margin_changes_only_the_target_logit():
    layer = head(CENTRES, 10.0, 0.0)
    before = np.asarray(layer([EMB, np.array([1])]))[0]
    layer.set_margin(0.2)
    after = np.asarray(layer([EMB, np.array([1])]))[0]
    np.testing.assert_allclose(after[[0, 2]], before[[0, 2]], atol=1e-6)
    np.testing.assert_allclose(after[1], 10 * math.cos(60 * DEG + 0.2), atol=1e-5)


def test_gradient_finite_when_embedding_sits_on_its_centre():
    """cos = +1 and -1 exactly, where arccos' derivative is infinite: a training step (any Keras backend) must leave
    every weight finite, those before the head (the embedding's gradient) and the class centres."""
    emb_in, label_in = keras.Input((2,)), keras.Input((), dtype="int32")
    embed = keras.layers.Dense(2, use_bias=False, kernel_initializer="identity")
    model = keras.Model([emb_in, label_in], head(CENTRES, 30.0, 0.5)([embed(emb_in), label_in]))
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    emb, labels = np.array([[1.0, 0.0], [-1.0, 0.0]], np.float32), np.array([0, 0])   # cos +1 and -1 with class 0
    loss = model.train_on_batch([emb, labels], labels)
    assert np.isfinite(loss) and all(np.isfinite(w).all() for w in model.get_weights())


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="margin"):
        ArcFace(3, margin=2.0)
    with pytest.raises(ValueError, match="class"):
        ArcFace(0)


def test_ramped_margin():
    assert [ramped_margin(0.3, e, 3) for e in range(5)] == pytest.approx([0.1, 0.2, 0.3, 0.3, 0.3])
    assert ramped_margin(0.3, 0, 0) == 0.3


def test_save_and_reload_keeps_margin_and_centres(tmp_path):
    emb_in, label_in = keras.Input((2,)), keras.Input((), dtype="int32")
    arc = ArcFace(3, scale=10.0, margin=0.4)
    model = keras.Model([emb_in, label_in], arc([L2Normalize()(emb_in), label_in]))
    arc.set_margin(0.25)  # a ramp's current value is state, saved with the weights
    model.save(tmp_path / "arc.keras")
    again = keras.saving.load_model(tmp_path / "arc.keras")
    x = [np.array([[0.3, -1.0], [2.0, 0.5]], np.float32), np.array([2, 1])]
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(model(x)), atol=1e-6)
    assert float(again.layers[-1].margin.numpy()) == pytest.approx(0.25)
