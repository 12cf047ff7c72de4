"""The title transformer at CPU speed: its Keras weights as one ONNX graph, run by ONNX Runtime
(:mod:`samesame.core.onnx_runtime` says why and when).

Keras/TensorFlow runs the 12-layer encoder at ~80-105 titles/s on 2 cores, ONNX Runtime at ~120, with
Keras' numbers to float32 rounding (a test checks 1e-5). Only :meth:`TitleEncoder.embed` on a CPU goes
through here; fine-tuning stays in Keras.

The graph: BERT's embedding block (position + token type + LayerNorm) on the word vectors looked up
outside, the encoder layers (post-LN, exact GELU, masked softmax attention), then mean pooling under
the mask -- :class:`samesame.text.title_model.EncoderLayer` written in ONNX operators.
"""

from __future__ import annotations

import numpy as np

from samesame.core.onnx_runtime import Graph, Session, use_onnx
from samesame.text.e5 import E5Config

__all__ = ["OnnxEncoder", "encoder_graph", "use_onnx"]


def encoder_graph(config: E5Config, layers: dict, masked: float, first: int = 0, last: int | None = None,
                  words: bool = True, pool: bool = True) -> bytes:
    """The serialized ONNX model ``(x (B, T, hidden), mask (B, T)) -> out``: BERT's embedding block when ``x`` is
    ``words`` (word vectors; else token states), encoder layers ``first`` to ``last`` (exclusive; default all),
    then mean pooling when ``pool`` (``out``: (B, hidden), else token states (B, T, hidden)).

    ``layers``: the Keras layers by name (``embed``, ``layer_0`` .. ``layer_{n-1}``), from both halves of
    the encoder; ``masked``: the attention score given to padding tokens.
    """
    g = Graph()
    f32 = np.float32
    x = "x"
    if words:
        embed = layers["embed"]
        t = g.op("Slice", g.op("Shape", x), g.const("i1", np.array([1])), g.const("i2", np.array([2])))
        positions = g.op("Slice", g.const("positions", embed.positions.numpy().astype(f32)),
                         g.const("i0", np.array([0])), t)
        x = g.op("Add", g.op("Add", x, positions), g.const("token_type", embed.token_type.numpy().astype(f32)))
        x = g.op("LayerNormalization", x, g.const("embed_g", embed.norm.gamma.numpy()),
                 g.const("embed_b", embed.norm.beta.numpy()), axis=-1, epsilon=config.eps)
    one = g.const("one", np.array(1.0, f32))
    bias = g.op("Mul", g.op("Sub", one, "mask"), g.const("masked", np.array(masked, f32)))
    bias = g.op("Unsqueeze", bias, g.const("heads_axes", np.array([1, 2])))              # (B, 1, 1, T)
    head = config.hidden // config.heads
    split = g.const("split_heads", np.array([0, 0, config.heads, head]))
    merge = g.const("merge_heads", np.array([0, 0, config.hidden]))
    scale = g.const("scale", np.array(1.0 / np.sqrt(head), f32))

    for i in range(first, config.layers if last is None else last):
        layer = layers[f"layer_{i}"]

        def dense(x, name):
            d = getattr(layer, name)
            return g.op("Add", g.op("MatMul", x, g.const(f"l{i}.{name}.w", d.kernel.numpy())),
                        g.const(f"l{i}.{name}.b", d.bias.numpy()))

        def norm(x, name):
            ln = getattr(layer, name)
            return g.op("LayerNormalization", x, g.const(f"l{i}.{name}.g", ln.gamma.numpy()),
                        g.const(f"l{i}.{name}.b", ln.beta.numpy()), axis=-1, epsilon=config.eps)

        q = g.op("Transpose", g.op("Reshape", dense(x, "q"), split), perm=[0, 2, 1, 3])
        k = g.op("Transpose", g.op("Reshape", dense(x, "k"), split), perm=[0, 2, 3, 1])
        v = g.op("Transpose", g.op("Reshape", dense(x, "v"), split), perm=[0, 2, 1, 3])
        scores = g.op("Add", g.op("Mul", g.op("MatMul", q, k), scale), bias)
        context = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
        context = g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]), merge)
        x = norm(g.op("Add", x, dense(context, "ao")), "aln")
        x = norm(g.op("Add", x, dense(g.op("Gelu", dense(x, "fi")), "fo")), "oln")

    shape = ["batch", "tokens", config.hidden]
    if not pool:
        g.op("Identity", x, output="out")
        return g.serialized("e5_title_layers", {"x": shape, "mask": ["batch", "tokens"]}, {"out": shape})
    m = g.op("Unsqueeze", "mask", g.const("last_axis", np.array([-1])))
    tokens_axis = g.const("tokens_axis", np.array([1]))
    total = g.op("ReduceSum", g.op("Mul", x, m), tokens_axis, keepdims=0)
    count = g.op("Max", g.op("ReduceSum", m, tokens_axis, keepdims=0), one)
    g.op("Div", total, count, output="out")
    return g.serialized("e5_title_encoder", {"x": shape, "mask": ["batch", "tokens"]}, {"out": ["batch", config.hidden]})


def is_ffn_output(weight: str) -> bool:
    """Whether a weight constant of :func:`encoder_graph` is a feed-forward output projection (``l<i>.fo.w``):
    its input, after GELU, has the outliers int8 handles worst, so the int8 graph keeps it float32."""
    return weight.split("#")[0].endswith(".fo.w")


class OnnxEncoder:
    """An ONNX Runtime session of :func:`encoder_graph`, on this process's CPU threads: ``(x, mask) -> out``."""

    def __init__(self, model: bytes, threads: int | None = None):
        self.session = Session(model, threads)

    def __call__(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.session.run(x=x, mask=mask)
