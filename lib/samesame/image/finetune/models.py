"""Model surgery: where the frozen trunk ends, and the trainable tail + head that fine-tuning trains on its output.

Everything below the unfrozen part stays frozen with its BatchNorms in inference mode (:class:`FrozenStatistics`),
so the trunk's output for an image never changes and can be computed once (:mod:`.views`).
"""

from __future__ import annotations

from typing import Sequence

import keras

from samesame.core.arcface import ArcFace
from samesame.image.backbones import stage_layer_names

UNFREEZE_MODES = ("layer", "module")
HEADS = ("softmax", "arcface")
NECK_BN_MOMENTUM = 0.9  # the new BatchNorm must settle within the ~100 steps of a short run


def unfrozen_layers(model: keras.Model, unfreeze: str) -> list[str]:
    """Names of the layers fine-tuning trains: "layer" = head_conv + BN, "module" = last stage + that."""
    if unfreeze not in UNFREEZE_MODES:
        raise ValueError(f"unfreeze must be one of {UNFREEZE_MODES}, got {unfreeze!r}")
    groups = stage_layer_names(model)
    last_stage = max((g for g in groups if g.startswith("stage")), key=lambda g: int(g[len("stage"):]))
    return groups["head"] if unfreeze == "layer" else groups[last_stage] + groups["head"]


def cut_layer(model: keras.Model, modes: Sequence[str]) -> str:
    """The first layer any requested mode trains: the trunk is everything before it."""
    order = {layer.name: i for i, layer in enumerate(model.layers)}
    return min((unfrozen_layers(model, mode)[0] for mode in modes), key=order.__getitem__)


def split_backbone(model: keras.Model, cut: str) -> tuple[keras.Model, keras.Model]:
    """(trunk: image -> input of layer ``cut``, tail: that tensor -> pooled embedding)."""
    boundary = model.get_layer(cut).input
    return keras.Model(model.input, boundary, name="trunk"), keras.Model(boundary, model.output, name="tail")


@keras.saving.register_keras_serializable(package="samesame")
class FrozenStatistics(keras.layers.Wrapper):
    """Runs the wrapped layer in inference mode even inside ``fit``.

    Keras 3 overrides a functional ``tail(x, training=False)`` with fit's training=True,
    which would make the unfrozen BatchNorms normalise by batch statistics and drift
    their moving averages; here their gamma/beta still train but the pretrained
    statistics stay, as in the frozen trunk below them.
    """

    def call(self, x):
        return self.layer(x, training=False)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


def build_models(tail: keras.Model, trainable: Sequence[str], head: str, n_classes: int, *,
                 arcface_scale: float, arcface_margin: float) -> tuple[keras.Model, keras.Model, ArcFace | None]:
    """(trainer: features [+ label] -> logits, embedder: features -> matching embedding, ArcFace layer).

    The tail is a fresh copy (pretrained weights) with only ``trainable`` layers trainable.
    Both heads sit on the same neck, pooled -> BatchNorm (the matching embedding; cosine
    kNN normalises it), so the two rows differ only in the loss: a dense softmax
    classifier, or ArcFace on the L2-normalised neck.
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    copy = keras.models.clone_model(tail)
    copy.set_weights(tail.get_weights())
    missing = set(trainable) - {layer.name for layer in copy.layers}
    if missing:
        raise ValueError(f"layers to unfreeze are not in the tail: {sorted(missing)}")
    for layer in copy.layers:
        layer.trainable = layer.name in trainable
    features = keras.Input(copy.input_shape[1:], name="trunk_features")
    embedding = keras.layers.BatchNormalization(momentum=NECK_BN_MOMENTUM, name="neck_bn")(
        FrozenStatistics(copy, name="tail")(features))
    embedder = keras.Model(features, embedding, name="embedder")
    if head == "softmax":
        return keras.Model(features, keras.layers.Dense(n_classes, dtype="float32", name="softmax")(embedding)), embedder, None
    label = keras.Input((), dtype="int32", name="label")
    arcface = ArcFace(n_classes, scale=arcface_scale, margin=arcface_margin, name="arcface")
    return keras.Model([features, label], arcface([embedding, label])), embedder, arcface
