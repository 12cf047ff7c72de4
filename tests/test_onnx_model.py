"""Image models in ONNX Runtime give Keras' numbers, for every kind of model the pipeline embeds with; anything
else stays in Keras."""

import keras
import numpy as np
import pytest

from samesame.core import onnx_runtime
from samesame.image import onnx_model
from samesame.image.backbones import load_backbone
from samesame.image.embed import run_model
from samesame.image.finetune.models import build_models, cut_layer, split_backbone, unfrozen_layers
from samesame.image.onnx_model import NotConvertible, image_graph, model_runner
from samesame.image.retrieval import Whitening, mirrored, with_flip_tta, with_whitening

SIZE = 96


@pytest.fixture(scope="module")
def lite():
    return load_backbone("efficientnet_lite0", input_size=SIZE)     # the real ImageNet weights


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    batch = rng.uniform(0, 255, (6, SIZE, SIZE, 3)).astype(np.float32)
    batch[:, : SIZE // 2] *= np.linspace(0.2, 1, SIZE)[None, None, :, None]      # not mirror-symmetric
    return batch


def assert_same(model, images, rtol=1e-4):
    keras_out = run_model(model, images)
    onnx_out = onnx_runtime.Session(image_graph(model)).run(input=images)
    assert onnx_out.shape == keras_out.shape
    scale = np.abs(keras_out).max()
    assert scale > 1e-3                                                   # real activations, not zeros
    np.testing.assert_allclose(onnx_out, keras_out, atol=rtol * scale)


def test_pretrained_lite_and_its_mirror_flip_and_whitening_wrappers_run_like_keras(lite, images):
    assert_same(lite.model, images)
    mirror = mirrored(lite)
    assert_same(mirror.model, images)
    assert not np.allclose(run_model(mirror.model, images), run_model(lite.model, images), atol=1e-3)
    assert_same(with_flip_tta(lite).model, images)
    white = Whitening.fit(np.random.default_rng(1).normal(size=(40, lite.dim)).astype(np.float32), dims=8)
    assert_same(with_whitening(lite, white, "0" * 40).model, images)


def test_a_fine_tuned_embedder_on_its_trunk_and_the_trunk_alone_run_like_keras(lite, images):
    cut = cut_layer(lite.model, ["module"])
    trunk, tail = split_backbone(lite.model, cut)
    assert_same(trunk, images)                                            # a 4-d feature map, channels last
    _, embedder, _ = build_models(tail, unfrozen_layers(tail, "module"), "arcface", 5, arcface_scale=30.0,
                                  arcface_margin=0.3)
    neck = embedder.get_layer("neck_bn")
    neck.moving_mean.assign(np.linspace(-1, 1, neck.moving_mean.shape[0]).astype(np.float32))
    neck.moving_variance.assign(np.linspace(0.5, 2, neck.moving_variance.shape[0]).astype(np.float32))
    assert_same(keras.Model(trunk.input, embedder(trunk.output)), images)


def test_other_models_stay_in_keras_with_their_own_numbers(images):
    def functional(*layers):
        x = inputs = keras.Input((SIZE, SIZE, 3))
        for layer in layers:
            x = layer(x)
        return keras.Model(inputs, x)

    with_activation = functional(keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.GlobalAveragePooling2D())
    with pytest.raises(NotConvertible, match="activation"):
        image_graph(with_activation)
    pooled = functional(keras.layers.MaxPooling2D(), keras.layers.GlobalAveragePooling2D())
    with pytest.raises(NotConvertible, match="MaxPooling2D"):
        image_graph(pooled)
    sequential = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.GlobalAveragePooling2D()])
    with pytest.raises(NotConvertible, match="functional"):
        image_graph(sequential)
    for model in (with_activation, pooled, sequential):
        np.testing.assert_array_equal(model_runner(model)(images), run_model(model, images))


def test_mixed_precision_models_stay_in_keras():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        half = load_backbone("random_lite0", input_size=32)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    with pytest.raises(NotConvertible, match="float16"):
        image_graph(half.model)


def test_without_onnx_runtime_the_runner_is_keras(lite, images, monkeypatch):
    monkeypatch.setattr(onnx_model, "use_onnx", lambda: False)
    np.testing.assert_array_equal(model_runner(lite.model)(images), run_model(lite.model, images))
