"""Fine-tune an image backbone on the TRAIN split's label groups: softmax or ArcFace head.

The seed's grid: unfreeze "layer" (the top conv layer + its BN, ``head_conv``) or
"module" (the last block stage + that layer), for 3/6/9 epochs, with a softmax or an
ArcFace head. Everything below the unfrozen part stays frozen with its BatchNorms in
inference mode, so its output for a given input image never changes. The trunk (the
frozen part) is therefore run ONCE per image and view -- the clean image plus
``n_views - 1`` augmented copies (mirror, crop-zoom, colour jitter) -- and only the
small tail + head is trained on those cached features. That is exactly training the
whole model with a frozen trunk on those views, at a fraction of the cost: on 2 CPU
cores the trunk pass dominates and the training epochs take seconds. It is also the
path for GPUs (call :func:`samesame.embed.configure_accelerator` first for mixed
precision); no separate end-to-end loop exists.

Memory: the cached features are ``n_train * n_views * H * W * C * 4`` bytes; with
EfficientNet-Lite0 cut before the last stage that is ``(image_size / 32)^2 * 192 * 4``
bytes per view (12 KiB at 128 px, 48 KiB at 256 px). Test images are cached once (clean).

Model selection never sees the test split: ~20% of the train split's groups are held
out, the models learn the rest, and the (head, unfreeze, epochs) with the best mean F1
on the held-out groups (cosine kNN, threshold tuned there) is chosen. Every row also
reports train/test mean F1 the way every other signal does (threshold tuned on the
train split, test reported at it). Snapshots at 3/6/9 epochs come from one run per
(head, unfreeze) with a constant learning rate.
"""

from __future__ import annotations

import hashlib

import json
import math
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Sequence

import keras
import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from .arcface import ArcFace, ramped_margin
from .backbones import Backbone, load_backbone, stage_layer_names
from .data import split_by_group
from .embed import STATUS_DTYPE, Embeddings, cache_key, default_workers, run_model
from .image_models import ImageSignal
from .images import is_usable, load_array
from .neighbors import best_threshold, exclude_rows, knn, sweep_thresholds, threshold_grid

UNFREEZE_MODES = ("layer", "module")
HEADS = ("softmax", "arcface")
NECK_BN_MOMENTUM = 0.9  # the new BatchNorm must settle within the ~100 steps of a short run
VAL_SEED_SALT = 7919  # the internal split must not reuse the train/test split's hash (same seed = no groups)
CROP_AREA = (0.6, 1.0)  # crop-zoom keeps most of the product: listings are framed around it
CROP_ASPECT = (3 / 4, 4 / 3)
JITTER = 0.2  # brightness, contrast, saturation factors drawn from [1 - JITTER, 1 + JITTER]
SUMMARY_FILE = "finetune.json"


# --------------------------------------------------------------------------- model surgery

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


# --------------------------------------------------------------------------- cached trunk views

def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One listing-like variant of a uint8 square image: mirror, crop-zoom, colour jitter.

    Sellers re-shoot, crop and re-grade the same product; rotations and heavy
    distortions are rare in listings, so they are not used.
    """
    size = image.shape[0]
    img = Image.fromarray(image)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    area, aspect = rng.uniform(*CROP_AREA), math.exp(rng.uniform(*np.log(CROP_ASPECT)))
    w = min(size, round(size * math.sqrt(area * aspect)))
    h = min(size, round(size * math.sqrt(area / aspect)))
    x0, y0 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
    x = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR, box=(x0, y0, x0 + w, y0 + h)), np.float32)
    brightness, contrast, saturation = rng.uniform(1 - JITTER, 1 + JITTER, size=3)
    x = x * brightness
    x = (x - x.mean()) * contrast + x.mean()
    grey = x.mean(axis=2, keepdims=True)
    x = (x - grey) * saturation + grey
    return np.clip(x, 0, 255).round().astype(np.uint8)


def image_views(image: np.ndarray, n_views: int, seed: int, row: int) -> np.ndarray:
    """(n_views, S, S, 3): the clean image, then augmented copies seeded by (seed, row, view)."""
    views = [image] + [augment(image, np.random.default_rng([seed, row, v])) for v in range(1, n_views)]
    return np.stack(views)


@dataclass
class TrunkViews:
    """Frozen-trunk outputs of every image and view of one split."""

    features: np.ndarray  # float32 (n, n_views, H, W, C); view 0 is the clean image
    status: np.ndarray  # str (n,), samesame.images statuses

    @property
    def ok(self) -> np.ndarray:
        return is_usable(self.status)


def trunk_views(paths: Sequence, trunk: Backbone, n_views: int, seed: int, *, batch_size: int = 64,
                cache_dir: str | Path | None = None, progress: bool = True, desc: str = "trunk") -> TrunkViews:
    """Run the frozen trunk over ``n_views`` views of every usable image (unusable ones stay zero, uncomputed).

    Images are decoded ``batch_size`` at a time in threads, so memory is one batch of
    views plus the features. With ``cache_dir`` the result is stored as one .npz keyed
    by the paths (size, mtime), the trunk, the image size, n_views and seed.
    """
    paths = list(paths)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"{cache_key(paths, trunk)}-views{n_views}-seed{seed}.npz"
        if cache.exists():
            with np.load(cache) as stored:
                return TrunkViews(stored["features"], stored["status"])
    size, shape = trunk.input_size, tuple(trunk.model.output_shape[1:])
    features = np.zeros((len(paths), n_views, *shape), dtype=np.float32)
    status = np.full(len(paths), "", dtype=STATUS_DTYPE)
    batch = np.zeros((batch_size * n_views, size, size, 3), dtype=np.float32)  # fixed shape: no retracing
    with ThreadPoolExecutor(default_workers()) as pool, tqdm(total=len(paths), desc=desc, unit="img",
                                                             disable=not progress) as bar:
        for start in range(0, len(paths), batch_size):
            rows = range(start, min(start + batch_size, len(paths)))
            loaded = list(pool.map(partial(load_array, size=size), [paths[r] for r in rows]))
            status[rows.start : rows.stop] = [s for _, s in loaded]
            usable = [(r, img) for r, (img, s) in zip(rows, loaded) if is_usable([s])[0]]
            if usable:  # a batch of missing images costs nothing (csv-only data has thousands)
                views = list(pool.map(lambda item: image_views(item[1], n_views, seed, item[0]), usable))
                batch[: len(usable) * n_views] = np.concatenate(views)
                out = run_model(trunk.model, batch)[: len(usable) * n_views]
                features[[r for r, _ in usable]] = out.reshape(len(usable), n_views, *shape)
            bar.update(len(rows))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, features=features, status=status)
        tmp.replace(cache)
    return TrunkViews(features, status)


# --------------------------------------------------------------------------- training and scoring

def train_epochs(trainer: keras.Model, arcface: ArcFace | None, views: np.ndarray, labels: np.ndarray, *,
                 epochs: int, batch_size: int, seed: int, margin: float, margin_ramp_epochs: int):
    """Yield (epoch, {loss, accuracy, margin}) after each epoch; each epoch sees every image once.

    Each image contributes one of its cached views per epoch (drawn at random) in a
    shuffled order; both come from ``seed``, so a rerun repeats the run exactly.
    """
    rng = np.random.default_rng(seed)
    n, n_views = views.shape[:2]
    for epoch in range(epochs):
        order = rng.permutation(n)
        x, y = views[order, rng.integers(0, n_views, size=n)], labels[order]
        current = None
        if arcface is not None:
            current = ramped_margin(margin, epoch, margin_ramp_epochs)
            arcface.set_margin(current)
        history = trainer.fit([x, y] if arcface is not None else x, y, batch_size=batch_size, epochs=1,
                              shuffle=False, verbose=0).history
        yield epoch + 1, {"loss": history["loss"][0], "accuracy": history["accuracy"][0], "margin": current}


def embed_features(embedder: keras.Model, views: TrunkViews, batch_size: int) -> Embeddings:
    """Matching embeddings of the clean views; rows without a usable image are zero, as in embed_images."""
    vectors = np.asarray(embedder.predict(views.features[:, 0], batch_size=batch_size, verbose=0), np.float32)
    vectors[~views.ok] = 0.0
    return Embeddings(vectors=vectors, status=views.status)


def best_mean_f1(emb: Embeddings, labels: Sequence) -> tuple[float, float]:
    """(best mean F1, its threshold) on these listings alone: the held-out selection score.

    The threshold is reported next to the train-split one because it comes from groups
    the model never trained on; on the sample it did not transfer to test any better.
    """
    dist, idx = exclude_rows(*knn(emb.vectors), emb.ok)
    sweep = sweep_thresholds(dist, idx, labels, threshold_grid(dist))
    return float(sweep["mean_f1"].max()), best_threshold(sweep)


def subset(emb: Embeddings, rows: np.ndarray) -> Embeddings:
    return Embeddings(vectors=emb.vectors[rows], status=emb.status[rows])


# --------------------------------------------------------------------------- results and storage

MIN_LEARNABLE_GROUPS = 5  # fewer groups with two usable images than this leaves nothing to learn from
TABLE_COLUMNS = ["model", "head", "unfreeze", "epochs", "weights", "threshold", "train_mean_f1", "test_mean_f1",
                 "selection_mean_f1", "selection_threshold"]
CURVE_COLUMNS = ["config", "head", "unfreeze", "epoch", "loss", "accuracy", "margin", "selection_mean_f1"]

@dataclass
class FinetuneResult:
    """The grid's table, the chosen row, per-epoch curves, and the chosen model's embeddings."""

    table: pd.DataFrame  # model, head, unfreeze, epochs, weights, threshold, train/test/selection mean F1,
    # selection_threshold
    best: dict  # the table row chosen by selection_mean_f1
    curves: pd.DataFrame  # head, unfreeze, config, epoch, loss, accuracy, margin, selection_mean_f1 (held-out groups)
    best_signal: ImageSignal | None
    info: dict = field(default_factory=dict)  # sizes, cache size, timings
    skipped: str | None = None  # why no model was trained (then the table is empty)

    def metrics(self) -> dict:
        """The metrics.json object: every grid row and the chosen one (or why the grid was skipped)."""
        out = {"rows": self.table.to_dict("records"), "best": self.best, "info": self.info}
        return out if self.skipped is None else {**out, "skipped": self.skipped}


def _row_dir(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / name


def save_row(models_dir: Path, name: str, embedder: keras.Model, signal: ImageSignal) -> None:
    """<models_dir>/<name>/embedder.keras (trunk features -> embedding) and <split>.npy / <split>_status.npy."""
    folder = _row_dir(models_dir, name)
    folder.mkdir(parents=True, exist_ok=True)
    embedder.save(folder / "embedder.keras")
    for split, emb in signal.embeddings.items():
        np.save(folder / f"{split}.npy", emb.vectors)
        np.save(folder / f"{split}_status.npy", emb.status)


def clear_models(models_dir: Path) -> None:
    """Remove the rows of an earlier grid in ``models_dir`` (so they never mix with this one), nothing else."""
    if not (models_dir / SUMMARY_FILE).exists():
        return
    for row in _summary(models_dir)["rows"]:
        shutil.rmtree(_row_dir(models_dir, row["model"]), ignore_errors=True)
    (models_dir / SUMMARY_FILE).unlink()


def _summary(models_dir: str | Path) -> dict:
    path = Path(models_dir) / SUMMARY_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run finetune_grid(..., models_dir={str(models_dir)!r}) first")
    return json.loads(path.read_text())


def _stored_row(models_dir: str | Path, name: str | None) -> dict:
    """The summary's row for ``name`` (default: the selected model), or a clear error listing what is there."""
    summary = _summary(models_dir)
    name = name or summary["best"]["model"]
    rows = {row["model"]: row for row in summary["rows"]}
    if name not in rows:
        raise FileNotFoundError(f"no fine-tuned model {name!r} in {models_dir}; stored: {sorted(rows)}")
    return {**rows[name], **{k: summary[k] for k in ("backbone", "image_size", "cut_layer")}}


def load_finetuned(models_dir: str | Path, name: str | None = None) -> tuple[str, ImageSignal]:
    """(model name, its stored train/test embeddings) -- the selected model unless ``name`` is given."""
    row = _stored_row(models_dir, name)
    name, folder = row["model"], _row_dir(Path(models_dir), row["model"])
    signal = ImageSignal(name, row["weights"])
    for split in ("train", "test"):
        signal.embeddings[split] = Embeddings(vectors=np.load(folder / f"{split}.npy"),
                                              status=np.load(folder / f"{split}_status.npy"))
    return name, signal


def finetuned_backbone(models_dir: str | Path, name: str | None = None) -> Backbone:
    """The stored model as a whole image -> embedding Backbone (pretrained trunk + trained tail), for embed_images."""
    row = _stored_row(models_dir, name)
    return backbone_from_embedder(_row_dir(Path(models_dir), row["model"]) / "embedder.keras", row)


def finetuned_spec(models_dir: str | Path, name: str | None = None) -> dict:
    """What rebuilds the stored model anywhere: model, backbone, image_size, cut_layer, weights and the
    embedder file's hash (:func:`backbone_from_embedder` takes it with the embedder.keras file)."""
    row = _stored_row(models_dir, name)
    embedder_file = _row_dir(Path(models_dir), row["model"]) / "embedder.keras"
    return {k: row[k] for k in ("model", "backbone", "image_size", "cut_layer", "weights")} | {
        "embedder_sha1": hashlib.sha1(embedder_file.read_bytes()).hexdigest()}


def backbone_from_embedder(embedder_file: str | Path, spec: dict) -> Backbone:
    """Pretrained trunk of ``spec["backbone"]`` cut at ``spec["cut_layer"]`` + the trained tail in ``embedder_file``."""
    embedder_file = Path(embedder_file)
    base = load_backbone(spec["backbone"], input_size=spec["image_size"])
    trunk, _ = split_backbone(base.model, spec["cut_layer"])
    embedder = keras.saving.load_model(embedder_file)
    model = keras.Model(trunk.input, embedder(trunk.output), name=spec["model"])
    # the file's hash in the weights string keeps embedding caches of different trainings apart
    digest = hashlib.sha1(embedder_file.read_bytes()).hexdigest()[:12]
    return Backbone(spec["model"], model, base.input_size, int(model.output_shape[-1]), f"{spec['weights']} [{digest}]")


# --------------------------------------------------------------------------- the grid

def _check_splits(splits: dict[str, pd.DataFrame]) -> None:
    for split in ("train", "test"):
        if split not in splits:
            raise ValueError(f"splits needs a {split!r} DataFrame (got {sorted(splits)})")
        missing = {"image_path", "label_group"} - set(splits[split].columns)
        if missing:
            raise ValueError(f"splits[{split!r}] lacks columns {sorted(missing)}: load it with samesame.data.load_dataset")


def holdout_groups(train: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of train rows whose group is held out for model selection (never the test split)."""
    _, held = split_by_group(train[["label_group"]], fraction, seed + VAL_SEED_SALT)
    is_held = train["label_group"].isin(set(held["label_group"])).to_numpy()
    if is_held.all() or not is_held.any():
        raise ValueError(f"holding out {fraction:.0%} of {train['label_group'].nunique()} train groups left "
                         f"{'nothing to train on' if is_held.all() else 'no groups to select on'}: "
                         "use more groups or change selection_fraction")
    return is_held


def finetune_grid(
    splits: dict[str, pd.DataFrame],
    *,
    backbone: str = "efficientnet_lite0",
    image_size: int = 128,
    unfreeze: Sequence[str] = UNFREEZE_MODES,
    epochs: Sequence[int] = (3, 6, 9),
    heads: Sequence[str] = HEADS,
    n_views: int = 4,
    batch_size: int = 64,
    lr: float = 3e-3,
    arcface_scale: float = 30.0,
    arcface_margin: float = 0.3,
    margin_ramp_epochs: int = 3,
    selection_fraction: float = 0.2,
    seed: int = 0,
    models_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune ``backbone`` for every (head, unfreeze) and report each epoch snapshot.

    splits: {"train": ..., "test": ...} listings with image_path and label_group. Only
    the train split trains and selects; test is embedded and scored for the table.
    The table's first row is the pretrained backbone itself (same image size, same
    protocol), which selection may also pick. models_dir: every row's embedder and
    embeddings are written there (see :func:`load_finetuned`); about (n_train + n_test)
    * 1280 * 4 bytes of embeddings plus ~4 MB of weights per row for Lite0.
    """
    _check_splits(splits)
    if n_views < 1 or not epochs or min(epochs) < 1:
        raise ValueError(f"need n_views >= 1 and epochs >= 1, got n_views={n_views}, epochs={tuple(epochs)}")
    train, test = splits["train"], splits["test"]
    started = time.perf_counter()
    keras.utils.set_random_seed(seed)
    base = load_backbone(backbone, input_size=image_size)
    cut = cut_layer(base.model, unfreeze)
    trunk_model, tail = split_backbone(base.model, cut)
    trunk = Backbone(f"{backbone}-trunk-{cut}", trunk_model, image_size,
                     int(np.prod(trunk_model.output_shape[1:])), base.weights)
    train_views = trunk_views(train["image_path"].tolist(), trunk, n_views, seed, batch_size=batch_size,
                              cache_dir=cache_dir, progress=progress, desc="trunk train")
    test_views = trunk_views(test["image_path"].tolist(), trunk, 1, seed, batch_size=batch_size,
                             cache_dir=cache_dir, progress=progress, desc="trunk test")
    trunk_s = time.perf_counter() - started

    held = holdout_groups(train, selection_fraction, seed)
    fit_rows = np.flatnonzero(~held & train_views.ok)  # placeholder images would teach grey = this group
    classes, fit_labels = np.unique(train["label_group"].to_numpy()[fit_rows], return_inverse=True)
    learnable = int((np.bincount(fit_labels) >= 2).sum()) if len(fit_rows) else 0
    if learnable < MIN_LEARNABLE_GROUPS:
        reason = (f"skipped: only {learnable} train groups have two or more usable images (need "
                  f"{MIN_LEARNABLE_GROUPS}); {int((~train_views.ok).sum())} of {len(train)} train images are "
                  "missing or unreadable, so images are matched with the pretrained backbone (03)")
        result = FinetuneResult(pd.DataFrame(columns=TABLE_COLUMNS), {}, pd.DataFrame(columns=CURVE_COLUMNS), None,
                                {"n_fit": len(fit_rows), "n_train_unusable": int((~train_views.ok).sum())}, reason)
        if models_dir is not None:     # the summary is 04's artefact (make's DAG): it says "skipped" too
            clear_models(Path(models_dir))
            (Path(models_dir) / SUMMARY_FILE).write_text(json.dumps(result.metrics(), indent=2))
        return result
    labels = {s: splits[s]["label_group"] for s in ("train", "test")}
    weights = f"fine-tuned on train groups from {base.weights}"
    if models_dir is not None:
        clear_models(Path(models_dir))

    rows, curves, best_signal = [], [], {}

    def score(name: str, embedder: keras.Model, **config) -> None:
        signal = ImageSignal(name, weights if config["epochs"] else base.weights,
                             {"train": embed_features(embedder, train_views, batch_size),
                              "test": embed_features(embedder, test_views, batch_size)})
        selection, selection_threshold = best_mean_f1(subset(signal.embeddings["train"], np.flatnonzero(held)),
                                                      labels["train"][held])
        summary = signal.tune(labels).summary()
        rows.append({"model": name, **config, "weights": signal.weights, "threshold": summary["threshold"],
                     "train_mean_f1": summary["train_mean_f1"], "test_mean_f1": summary["test_mean_f1"],
                     "selection_mean_f1": round(selection, 4), "selection_threshold": selection_threshold})
        if models_dir is not None:
            save_row(Path(models_dir), name, embedder, signal)
        if not best_signal or rows[-1]["selection_mean_f1"] > best_signal["score"]:  # only one row's vectors in memory
            best_signal.update(score=rows[-1]["selection_mean_f1"], signal=signal)

    # every epoch is scored on the held-out groups too, so the curves show over-fitting where it starts
    held_views = TrunkViews(train_views.features[held, :1], train_views.status[held])
    features = keras.Input(tail.input_shape[1:], name="trunk_features")
    score(f"{backbone}-pretrained", keras.Model(features, tail(features)), head="none", unfreeze="none", epochs=0)
    configs = [(h, u) for h in heads for u in unfreeze]
    with tqdm(total=len(configs) * max(epochs), desc="fine-tune", unit="epoch", disable=not progress) as bar:
        for head, mode in configs:
            keras.utils.set_random_seed(seed)
            trainer, embedder, arcface = build_models(tail, unfrozen_layers(base.model, mode), head, len(classes),
                                                      arcface_scale=arcface_scale, arcface_margin=arcface_margin)
            trainer.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                            metrics=["accuracy"])
            for epoch, stats in train_epochs(trainer, arcface, train_views.features[fit_rows], fit_labels,
                                             epochs=max(epochs), batch_size=batch_size, seed=seed,
                                             margin=arcface_margin, margin_ramp_epochs=margin_ramp_epochs):
                held_f1 = best_mean_f1(embed_features(embedder, held_views, batch_size), labels["train"][held])[0]
                curves.append({"config": f"{head}-{mode}", "head": head, "unfreeze": mode, "epoch": epoch, **stats,
                               "selection_mean_f1": round(held_f1, 4)})
                if epoch in epochs:
                    score(f"{backbone}-{head}-{mode}-e{epoch}", embedder, head=head, unfreeze=mode, epochs=epoch)
                bar.update(1)

    table = pd.DataFrame(rows)
    best = table.loc[table["selection_mean_f1"].idxmax()].to_dict()
    info = {"backbone": backbone, "image_size": image_size, "cut_layer": cut, "n_views": n_views,
            "n_fit": len(fit_rows), "n_train_unusable": int((~train_views.ok).sum()), "n_fit_groups": len(classes),
            "fit_groups": [int(g) for g in classes],   # what the models memorised: the matcher fit tunes without them
            "selection_fraction": selection_fraction, "seed": seed, "n_selection": int(held.sum()),
            "n_selection_groups": int(train.loc[held, "label_group"].nunique()),
            "trunk_cache_mb": round((train_views.features.nbytes + test_views.features.nbytes) / 2**20, 1),
            "trunk_seconds": round(trunk_s, 1), "total_seconds": round(time.perf_counter() - started, 1)}
    result = FinetuneResult(table, best, pd.DataFrame(curves), best_signal["signal"], info)
    if models_dir is not None:
        summary = {**result.metrics(), **{k: info[k] for k in ("backbone", "image_size", "cut_layer")}}
        (Path(models_dir) / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    return result


__all__ = ["FinetuneResult", "FrozenStatistics", "augment", "build_models", "cut_layer", "finetune_grid",
           "backbone_from_embedder", "finetuned_backbone", "finetuned_spec", "load_finetuned", "split_backbone", "trunk_views", "unfrozen_layers"]
