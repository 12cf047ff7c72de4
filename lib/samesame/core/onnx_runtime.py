"""Inference on a CPU in ONNX Runtime: a Keras model's arithmetic written out as an ONNX graph.

Why: on a 2-core CPU, TensorFlow runs our inference-only models 1.4-2.5x slower than ONNX Runtime does
(the title transformer: ~80 against ~120 titles/s; EfficientNet-Lite0 at 224 px: 41 against 104 images/s),
and the numbers are Keras' to float32 rounding. Training stays in Keras (any backend, mixed precision on a
GPU); each caller rebuilds its graph from the weights in memory, so no artefact needs a new file, and Keras
remains the fallback wherever ONNX Runtime is missing or a GPU makes Keras the fast one.

Here: whether to use it (:func:`use_onnx`), a graph builder (:class:`Graph`) and a session (:class:`Session`).
The graphs themselves are :mod:`samesame.text.onnx_encoder` and :mod:`samesame.image.onnx_model`.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

OPSET = 20        # LayerNormalization (17) and Gelu (20) as single operators


def use_onnx() -> bool:
    """Run inference in ONNX Runtime: when it is installed (requirements.txt pins it) and Keras has no GPU
    (there the Keras model, in mixed precision, is the fast one)."""
    return _importable() and not keras_on_gpu()


@functools.cache
def _importable() -> bool:
    """Whether onnx and onnxruntime import; one that is installed but broken (e.g. a protobuf it cannot use)
    is named in a warning, and Keras runs instead, with the same numbers."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    except Exception as err:           # noqa: BLE001 -- any failure to load an optional accelerator
        warnings.warn(f"onnx / onnxruntime fail to import ({type(err).__name__}: {err}); inference runs in Keras "
                      "instead (same numbers, slower on a CPU)", stacklevel=2)
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


class Graph:
    """Nodes and constants of a graph under construction; each node's output is named ``t<n>`` unless given."""

    def __init__(self):
        self.nodes, self.constants, self._n, self._names = [], [], 0, set()

    def const(self, name: str, value) -> str:
        """A constant tensor; returns its name, ``name`` made unique (a layer written twice keeps both copies)."""
        from onnx import numpy_helper
        unique, n = name, 1
        while unique in self._names:
            n += 1
            unique = f"{name}#{n}"
        self._names.add(unique)
        self.constants.append(numpy_helper.from_array(np.asarray(value), unique))
        return unique

    def op(self, op_type: str, *inputs: str, output: str | None = None, **attrs) -> str:
        from onnx import helper
        self._n += 1
        output = output or f"t{self._n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=output, **attrs))
        return output

    def serialized(self, name: str, inputs: dict[str, list], outputs: dict[str, list]) -> bytes:
        """The checked model (float32 inputs and outputs of these shapes; a str dimension is free) as bytes."""
        from onnx import TensorProto, checker, helper
        graph = helper.make_graph(self.nodes, name,
                                  [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
                                  [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
                                  self.constants)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        checker.check_model(model)
        return model.SerializeToString()


def int8_model(model: bytes, keep_float: Callable[[str], bool] = lambda weight: False) -> bytes:
    """``model`` with its MatMuls by a constant weight dynamically quantized to int8 (weights per output
    channel, activations per batch), except those whose weight's name ``keep_float`` accepts; the rest of the
    graph (attention's activation-by-activation products included) stays float32.

    Why dynamic: no calibration data to carry, and a title's activations get their own range each batch.
    Keeping a few MatMuls in float32 buys back most of the accuracy int8 loses where activations have outliers
    (the title transformer's FFN output: -0.003 F1 all int8, -0.0008 with it kept float, on an AVX2 CPU)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load_from_string(model)
    weights = {t.name for t in graph.graph.initializer}
    chosen = [n.name for n in graph.graph.node
              if n.op_type == "MatMul" and n.input[1] in weights and not keep_float(n.input[1])]
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(model)
        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)     # "Please consider to run pre-processing before quantization"
        try:
            quantize_dynamic(src, out, op_types_to_quantize=["MatMul"], per_channel=True,
                             weight_type=QuantType.QInt8, nodes_to_quantize=chosen)
        finally:
            logging.getLogger().setLevel(quiet)
        return out.read_bytes()


class Session:
    """An ONNX Runtime session of one serialized graph, on this process's CPU threads; :meth:`run` returns the
    graph's first output."""

    def __init__(self, model: bytes, threads: int | None = None):
        import onnxruntime as ort
        options = ort.SessionOptions()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        options.intra_op_num_threads = threads or cores
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.output = self.session.get_outputs()[0].name

    def run(self, **inputs: np.ndarray) -> np.ndarray:
        return self.session.run([self.output], {k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()})[0]
