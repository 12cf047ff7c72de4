"""Image models in ONNX Runtime on a CPU: EfficientNet-Lite, its fine-tuned tails and the mirror, flip and
whitening wrappers, converted layer by layer from the Keras model in memory.

Why: on 2 CPU cores Keras runs Lite0 at 224 px at 41 images/s and Lite2 at 260 px at 19; ONNX Runtime runs
the same arithmetic at 104 and 45, with the same embeddings to float32 rounding (tests check each model
kind). Embedding photos is most of 03, 04 and 05 on a CPU.

The converter walks the Keras functional graph (nested models included) and writes each layer as ONNX
operators, channels first inside (ONNX's convolution layout), channels last at the model's edges as in
Keras. A model with any other layer (the keras.applications backbones), or one built under mixed
precision, raises :class:`NotConvertible` and :func:`model_runner` keeps Keras for it: same numbers.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np

from samesame.core.onnx_runtime import Graph, Session, use_onnx

TO_CHANNELS_FIRST = {0: 0, 1: 2, 2: 3, 3: 1}   # a 4-d Keras axis (NHWC) -> its ONNX axis (NCHW)


class NotConvertible(ValueError):
    """The model holds something this converter does not write as ONNX; Keras runs it instead."""


def model_runner(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """``batch (float32, the model's input shape) -> float32 outputs``: ONNX Runtime on a CPU when the model
    converts, else Keras' compiled predict. Build it once per pass over many batches (conversion takes ~1 s)."""
    if use_onnx():
        try:
            session = Session(image_graph(model))
        except NotConvertible:
            pass
        else:
            return lambda batch: session.run(input=batch)
    return lambda batch: run_model(model, batch)


def run_model(model: keras.Model, batch: np.ndarray) -> np.ndarray:
    """One forward pass in Keras as float32 numpy (many batches: :func:`model_runner`).

    predict_on_batch runs Keras' compiled predict function; eager ``model(x)``
    dispatches op by op and is slower on CPU for small convnets.
    """
    return np.asarray(model.predict_on_batch(batch), dtype=np.float32)


def image_graph(model: keras.Model) -> bytes:
    """``model`` (one input, one output) as a serialized ONNX graph ``input -> output``, same layouts as Keras."""
    return _Converter().model(model)


class _Converter:
    """Writes Keras operations as ONNX nodes; every tensor's rank is kept (4-d ones are channels first here)."""

    def __init__(self):
        self.g = Graph()
        self.rank: dict[str, int] = {}

    def model(self, model: keras.Model) -> bytes:
        _one_in_one_out(model)
        in_shape, out_shape = model.inputs[0].shape, model.outputs[0].shape
        x = self.out(self.g.op("Transpose", "input", perm=[0, 3, 1, 2]), 4) if len(in_shape) == 4 else \
            self.out("input", len(in_shape))
        out = self.walk(model, x)
        if len(out_shape) == 4:
            out = self.g.op("Transpose", out, perm=[0, 2, 3, 1])
        self.g.op("Identity", out, output="output")

        def dims(shape):
            return ["batch", *[d if d is not None else f"d{i}" for i, d in enumerate(shape[1:])]]
        return self.g.serialized(f"samesame_{model.name}", {"input": dims(in_shape)}, {"output": dims(out_shape)})

    def out(self, name: str, rank: int) -> str:
        self.rank[name] = rank
        return name

    def walk(self, model: keras.Model, x: str) -> str:
        """The functional ``model`` applied to tensor ``x``; returns its output's name."""
        _one_in_one_out(model)
        out = model._run_through_graph([x], operation_fn=lambda op: lambda *a, **kw: self.layer(op, *a, **kw))
        return keras.tree.flatten(out)[0]

    def layer(self, layer, *args, **kwargs) -> str:
        """One Keras operation on already-written inputs (names); raises NotConvertible."""
        if getattr(layer, "weights", None) and getattr(layer, "compute_dtype", "float32") != "float32":
            raise NotConvertible(f"layer {layer.name!r} computes in {layer.compute_dtype}")
        if isinstance(layer, keras.Model):
            return self.walk(layer, args[0])
        from samesame.image.finetune.models import FrozenStatistics   # here: finetune imports embed, embed this
        if isinstance(layer, FrozenStatistics):          # inference mode is all ONNX knows
            return self.layer(layer.layer, *args)
        kind, g, x = type(layer).__name__, self.g, args[0]
        if kind in ("Add", "Average"):
            return self.out(g.op("Sum" if kind == "Add" else "Mean", *x), self.rank[x[0]])
        rank = self.rank[x]
        if kind == "Rescaling":
            scale, offset = np.asarray(layer.scale, np.float32), np.asarray(layer.offset, np.float32)
            if scale.ndim or offset.ndim:
                raise NotConvertible(f"Rescaling {layer.name!r} with per-channel values")
            return self.out(g.op("Add", g.op("Mul", x, g.const(f"{layer.name}.scale", scale)),
                                 g.const(f"{layer.name}.offset", offset)), rank)
        if kind in ("Conv2D", "DepthwiseConv2D"):
            return self.out(_conv(g, layer, x), 4)
        if kind == "BatchNormalization":
            if layer.axis != -1 or rank not in (2, 4):  # channels: the last Keras axis, ONNX's axis 1
                raise NotConvertible(f"BatchNormalization {layer.name!r} over axis {layer.axis} of a {rank}-d tensor")
            channels = layer.moving_mean.shape[0]
            params = {"gamma": layer.gamma.numpy() if layer.scale else np.ones(channels, np.float32),
                      "beta": layer.beta.numpy() if layer.center else np.zeros(channels, np.float32),
                      "mean": layer.moving_mean.numpy(), "variance": layer.moving_variance.numpy()}
            return self.out(g.op("BatchNormalization", x, *(g.const(f"{layer.name}.{n}", np.asarray(v, np.float32))
                                                           for n, v in params.items()),
                                 epsilon=float(layer.epsilon)), rank)
        if kind == "ReLU":
            if layer.negative_slope or layer.threshold:
                raise NotConvertible(f"ReLU {layer.name!r} with a slope or threshold")
            if layer.max_value is None:
                return self.out(g.op("Relu", x), rank)
            return self.out(g.op("Clip", x, g.const(f"{layer.name}.low", np.float32(0)),
                                 g.const(f"{layer.name}.high", np.float32(layer.max_value))), rank)
        if kind == "GlobalAveragePooling2D":
            if layer.keepdims or layer.data_format != "channels_last":
                raise NotConvertible(f"GlobalAveragePooling2D {layer.name!r} keeping its dimensions")
            return self.out(g.op("Flatten", g.op("GlobalAveragePool", x)), 2)
        if kind == "Dense" and rank == 2:
            _linear(layer)
            out = g.op("MatMul", x, g.const(f"{layer.name}.kernel", layer.kernel.numpy()))
            return self.out(g.op("Add", out, g.const(f"{layer.name}.bias", layer.bias.numpy()))
                            if layer.use_bias else out, 2)
        if kind == "UnitNormalization" and rank == 2 and layer.axis in (-1, 1, [-1], [1]):
            # Keras: x * min(rsqrt(sum(x^2)), 1 / 1e-12)
            squares = g.op("ReduceSumSquare", x, g.const(f"{layer.name}.axis", np.array([-1])), keepdims=1)
            inverse = g.op("Min", g.op("Reciprocal", g.op("Sqrt", squares)), g.const(f"{layer.name}.cap",
                                                                                     np.float32(1e12)))
            return self.out(g.op("Mul", x, inverse), 2)
        if kind == "Flip" and rank == 4 and layer.axis in (1, 2, 3):
            axis = TO_CHANNELS_FIRST[layer.axis]
            return self.out(g.op("Slice", x, g.const("flip.start", np.array([-1])),
                                 g.const("flip.end", np.array([np.iinfo(np.int64).min])),
                                 g.const("flip.axis", np.array([axis])), g.const("flip.step", np.array([-1]))), 4)
        raise NotConvertible(f"{kind} {getattr(layer, 'name', '')!r} on a {rank}-d tensor has no ONNX counterpart here")


def _one_in_one_out(model) -> None:
    if not hasattr(model, "_run_through_graph") or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise NotConvertible(f"{type(model).__name__} {getattr(model, 'name', '')!r} is not a one-input, one-output "
                             "functional model")


def _linear(layer) -> None:
    if layer.activation is not keras.activations.linear:
        raise NotConvertible(f"{type(layer).__name__} {layer.name!r} has a built-in activation")


def _conv(g: Graph, layer, x: str) -> str:
    """Conv2D / DepthwiseConv2D, channels last in Keras, 'same' or 'valid' padding, no dilation."""
    _linear(layer)
    if layer.data_format != "channels_last" or tuple(layer.dilation_rate) != (1, 1):
        raise NotConvertible(f"{type(layer).__name__} {layer.name!r} with dilation or channels first")
    if type(layer).__name__ == "DepthwiseConv2D":
        k = layer.kernel.numpy()                   # (kh, kw, C, multiplier)
        w, group = k.transpose(2, 3, 0, 1).reshape(-1, 1, *k.shape[:2]), k.shape[2]
    else:
        if layer.groups != 1:
            raise NotConvertible(f"Conv2D {layer.name!r} with groups")
        w, group = layer.kernel.numpy().transpose(3, 2, 0, 1), 1
    inputs = [x, g.const(f"{layer.name}.kernel", np.ascontiguousarray(w))]
    if layer.use_bias:
        inputs.append(g.const(f"{layer.name}.bias", layer.bias.numpy()))
    padding = {"same": "SAME_UPPER", "valid": "VALID"}[layer.padding]   # TF 'same': the extra row at the end
    return g.op("Conv", *inputs, auto_pad=padding, group=int(group), kernel_shape=list(w.shape[2:]),
                strides=[int(s) for s in layer.strides])
