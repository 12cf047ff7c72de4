"""The title transformer at CPU speed: its Keras weights as one ONNX graph, run by ONNX Runtime.

Why: on a 2-core CPU, Keras/TensorFlow runs the 12-layer encoder at ~80-105 titles/s (batch of 64,
sequences padded only to the batch's longest title); ONNX Runtime runs the very same arithmetic at
~120 titles/s, and its output equals Keras' to float32 rounding (a test checks 1e-5). Fine-tuning stays
in Keras (any backend, mixed precision on a GPU); only :meth:`TitleEncoder.embed` on a CPU goes through
here, so a saved matcher needs no new file: the graph is rebuilt from the weights when first needed.

The graph: BERT's embedding block (position + token type + LayerNorm) on the word vectors looked up
outside, the encoder layers (post-LN, exact GELU, masked softmax attention), then mean pooling under
the mask -- :class:`samesame.text.title_model.EncoderLayer` written in ONNX operators.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from samesame.text.e5 import E5Config

OPSET = 20        # LayerNormalization (17) and Gelu (20) as single operators


def use_onnx() -> bool:
    """Run the title encoder in ONNX Runtime: when it is installed (requirements.txt pins it) and Keras has
    no GPU (there the Keras model, in mixed precision, is the fast one)."""
    return _importable() and not keras_on_gpu()


@functools.cache
def _importable() -> bool:
    """Whether onnx and onnxruntime import; one that is installed but broken (e.g. a protobuf it cannot use)
    is named in a warning, and Keras embeds instead, with the same numbers."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    except Exception as err:           # noqa: BLE001 -- any failure to load an optional accelerator
        warnings.warn(f"onnx / onnxruntime fail to import ({type(err).__name__}: {err}); title embeddings run "
                      "in Keras instead (same numbers, slower on a CPU)", stacklevel=2)
        return False
    return True


def keras_on_gpu() -> bool:
    """Whether Keras' backend computes on a GPU (TensorFlow, JAX or PyTorch)."""
    import keras
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax
        return jax.default_backend() != "cpu"
    if backend == "torch":
        import torch
        return torch.cuda.is_available()
    return False


class _Graph:
    """Nodes and constants of the graph under construction, each output named ``t<n>``."""

    def __init__(self):
        self.nodes, self.constants, self._n = [], [], 0

    def const(self, name: str, value) -> str:
        from onnx import numpy_helper
        self.constants.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, output: str | None = None, **attrs) -> str:
        from onnx import helper
        self._n += 1
        output = output or f"t{self._n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attrs))
        return output


def encoder_graph(config: E5Config, layers: dict, masked: float) -> bytes:
    """The serialized ONNX model ``(words (B, T, hidden), mask (B, T)) -> pooled (B, hidden)``.

    ``layers``: the Keras layers by name (``embed``, ``layer_0`` .. ``layer_{n-1}``), from both halves of
    the encoder; ``masked``: the attention score given to padding tokens.
    """
    from onnx import TensorProto, checker, helper

    g = _Graph()
    f32 = np.float32
    embed = layers["embed"]
    t = g.op("Slice", g.op("Shape", "words"), g.const("i1", np.array([1])), g.const("i2", np.array([2])))
    positions = g.op("Slice", g.const("positions", embed.positions.numpy().astype(f32)),
                     g.const("i0", np.array([0])), t)
    x = g.op("Add", g.op("Add", "words", positions), g.const("token_type", embed.token_type.numpy().astype(f32)))
    x = g.op("LayerNormalization", x, g.const("embed_g", embed.norm.gamma.numpy()),
             g.const("embed_b", embed.norm.beta.numpy()), axis=-1, epsilon=config.eps)
    one = g.const("one", np.array(1.0, f32))
    bias = g.op("Mul", g.op("Sub", one, "mask"), g.const("masked", np.array(masked, f32)))
    bias = g.op("Unsqueeze", bias, g.const("heads_axes", np.array([1, 2])))              # (B, 1, 1, T)
    head = config.hidden // config.heads
    split = g.const("split_heads", np.array([0, 0, config.heads, head]))
    merge = g.const("merge_heads", np.array([0, 0, config.hidden]))
    scale = g.const("scale", np.array(1.0 / np.sqrt(head), f32))

    for i in range(config.layers):
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

    m = g.op("Unsqueeze", "mask", g.const("last_axis", np.array([-1])))
    tokens_axis = g.const("tokens_axis", np.array([1]))
    total = g.op("ReduceSum", g.op("Mul", x, m), tokens_axis, keepdims=0)
    count = g.op("Max", g.op("ReduceSum", m, tokens_axis, keepdims=0), one)
    g.op("Div", total, count, output="pooled")
    inputs = [helper.make_tensor_value_info("words", TensorProto.FLOAT, ["batch", "tokens", config.hidden]),
              helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "tokens"])]
    outputs = [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", config.hidden])]
    graph = helper.make_graph(g.nodes, "e5_title_encoder", inputs, outputs, g.constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    checker.check_model(model)
    return model.SerializeToString()


class OnnxEncoder:
    """An ONNX Runtime session of :func:`encoder_graph`, on this process's CPU threads."""

    def __init__(self, model: bytes, threads: int | None = None):
        import os

        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def pooled(self, words: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean-pooled final token states (unnormalised), float32 (batch, hidden)."""
        return self.session.run(["pooled"], {"words": words.astype(np.float32, copy=False),
                                             "mask": mask.astype(np.float32, copy=False)})[0]
