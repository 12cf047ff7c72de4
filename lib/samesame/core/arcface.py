"""ArcFace (additive angular margin) classification head for metric learning.

Training a classifier whose logits are ``s * cos(angle to class centre)`` and whose
target logit is penalised to ``s * cos(theta + m)`` pulls every embedding within an
angle of its group's centre and pushes groups apart on the unit sphere -- exactly the
geometry a cosine-distance threshold later cuts. Plain softmax only asks for the right
ordering of logits, so its embeddings separate groups less cleanly under cosine kNN.

The head is generic (any embedding + integer label), so image and title models share it.
"""

from __future__ import annotations

import math

import keras
from keras import ops

COS_EPS = 1e-7  # keeps sqrt(1 - cos^2) and its gradient finite at cos = +-1


def unit_length(x, axis: int = -1):
    """``x`` scaled to unit L2 norm along ``axis`` (all-zero vectors stay zero)."""
    return x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x), axis=axis, keepdims=True), 1e-12))


@keras.saving.register_keras_serializable(package="samesame")
class L2Normalize(keras.layers.Layer):
    """Rows scaled to unit length: the embedding that cosine kNN and ArcFace both see."""

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, x):
        return unit_length(x, self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


@keras.saving.register_keras_serializable(package="samesame")
class ArcFace(keras.layers.Layer):
    """``[embedding (batch, d), label (batch,) int] -> logits (batch, n_classes)``.

    Logits are ``scale * cos`` between the L2-normalised embedding and the L2-normalised
    class weight, except the label's own class gets ``scale * cos(theta + margin)``.
    Where ``theta + margin`` would pass pi (cos(theta + m) stops decreasing), the target
    logit becomes ``cos - sin(pi - m) * m`` instead (the "th / mm" trick), so the penalty
    stays monotonic; ``easy_margin`` applies the margin only where cos > 0.

    ``margin`` is a non-trainable variable: a training loop may raise it per epoch with
    :meth:`set_margin` (a margin ramp) without recompiling. The layer computes in float32
    by default, also under a mixed_float16 policy: in float16, cos clipped at 1 - 1e-7
    rounds to 1 and the gradient of sqrt(1 - cos^2) becomes infinite.
    """

    def __init__(self, n_classes: int, scale: float = 30.0, margin: float = 0.5,
                 easy_margin: bool = False, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if n_classes < 1:
            raise ValueError(f"ArcFace needs at least one class, got n_classes={n_classes}")
        if not 0 <= margin < math.pi / 2:
            raise ValueError(f"ArcFace margin must be in [0, pi/2) radians, got {margin}")
        self.n_classes, self.scale, self.easy_margin = int(n_classes), float(scale), bool(easy_margin)
        self.initial_margin = float(margin)

    def build(self, input_shape):
        dim = input_shape[0][-1]
        self.centres = self.add_weight(shape=(dim, self.n_classes), initializer="glorot_uniform", name="centres")
        self.margin = self.add_weight(shape=(), initializer=keras.initializers.Constant(self.initial_margin),
                                      trainable=False, name="margin")

    def set_margin(self, margin: float) -> None:
        """Change the angular margin (radians) used from the next batch on."""
        self.margin.assign(float(margin))

    def cosine(self, embedding):
        """cos(angle) between each embedding and each class centre, clipped inside (-1, 1)."""
        x = unit_length(ops.cast(embedding, self.compute_dtype))
        return ops.clip(ops.matmul(x, unit_length(self.centres, axis=0)), -1.0 + COS_EPS, 1.0 - COS_EPS)

    def call(self, inputs):
        embedding, labels = inputs
        cos = self.cosine(embedding)
        m = ops.cast(self.margin, cos.dtype)
        sin = ops.sqrt(1.0 - ops.square(cos))
        cos_m = cos * ops.cos(m) - sin * ops.sin(m)  # cos(theta + m)
        if self.easy_margin:
            target = ops.where(cos > 0, cos_m, cos)
        else:
            target = ops.where(cos > ops.cos(math.pi - m), cos_m, cos - ops.sin(math.pi - m) * m)
        is_target = ops.one_hot(ops.reshape(ops.cast(labels, "int32"), (-1,)), self.n_classes, dtype="bool")
        return self.scale * ops.where(is_target, target, cos)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.n_classes)

    def get_config(self):
        return {**super().get_config(), "n_classes": self.n_classes, "scale": self.scale,
                "margin": self.initial_margin, "easy_margin": self.easy_margin}


def ramped_margin(margin: float, epoch: int, ramp_epochs: int) -> float:
    """Margin for 0-based ``epoch``: linear from margin/ramp_epochs up to ``margin`` at epoch ramp_epochs-1.

    Starting with a small margin lets the randomly initialised class centres settle
    before the full penalty makes the target logit hard to win (with tiny groups a
    full margin from step one often stalls the loss). ``ramp_epochs <= 1``: no ramp.
    """
    if ramp_epochs <= 1:
        return margin
    return margin * min(1.0, (epoch + 1) / ramp_epochs)


__all__ = ["ArcFace", "L2Normalize", "ramped_margin", "unit_length"]
