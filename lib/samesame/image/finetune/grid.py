"""04's grid: train every (head, unfreeze) once, score each epoch snapshot, select on held-out train groups, save.

The trunk runs once (:mod:`.views`); each (head, unfreeze) then trains a fresh copy of the pretrained tail for
``max(epochs)`` epochs at a constant learning rate, and the snapshots at ``epochs`` become table rows. Every row
reports train/test mean F1 the way every other signal does (threshold tuned on the train split, test reported
at it); the row with the best mean F1 on the held-out train groups is chosen, so selection never sees test.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import keras
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from samesame.image.backbones import Backbone, load_backbone
from samesame.image.comparison import ImageSignal
from samesame.image.finetune.files import clear_models, save_row, write_summary
from samesame.image.finetune.models import build_models, cut_layer, split_backbone, unfrozen_layers
from samesame.image.finetune.train import best_mean_f1, embed_features, holdout_groups, subset, train_epochs
from samesame.image.finetune.views import TrunkViews, trunk_views

MIN_LEARNABLE_GROUPS = 5  # fewer groups with two usable images than this leaves nothing to learn from
TABLE_COLUMNS = ["model", "head", "unfreeze", "epochs", "weights", "threshold", "train_mean_f1", "test_mean_f1",
                 "selection_mean_f1", "selection_threshold"]
CURVE_COLUMNS = ["config", "head", "unfreeze", "epoch", "loss", "accuracy", "margin", "selection_mean_f1"]


@dataclass(frozen=True)
class FinetuneSettings:
    """04's grid (settings key ``finetune``): every (head, unfreeze) trained once, scored at each of ``epochs``."""

    backbone: str
    image_size: int
    unfreeze: tuple[str, ...]       # "layer" and/or "module"
    epochs: tuple[int, ...]         # snapshots scored
    heads: tuple[str, ...]          # "softmax" and/or "arcface"
    views: int                      # the clean image + views - 1 augmented copies per train image
    batch_size: int
    lr: float
    selection_fraction: float       # train groups held out inside train to choose the model
    arcface_scale: float
    arcface_margin: float
    margin_ramp_epochs: int


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


@dataclass
class _Trunk:
    """The pretrained backbone cut below everything any mode trains, and the frozen trunk's cached views."""

    base: Backbone
    cut: str
    tail: keras.Model
    train: TrunkViews
    test: TrunkViews


@dataclass
class _FitSplit:
    """The train rows the models learn (usable images outside the selection groups) and their classes."""

    held: np.ndarray      # bool per train row: in the held-out selection groups
    rows: np.ndarray      # indices of the train rows trained on
    classes: np.ndarray   # their label groups, in class order
    labels: np.ndarray    # class index of each trained row

    @property
    def learnable(self) -> int:
        """Groups with two or more trained images: the ones a classifier can learn a likeness from."""
        return int((np.bincount(self.labels) >= 2).sum()) if len(self.rows) else 0


def _check_splits(splits: dict[str, pd.DataFrame]) -> None:
    for split in ("train", "test"):
        if split not in splits:
            raise ValueError(f"splits needs a {split!r} DataFrame (got {sorted(splits)})")
        missing = {"image_path", "label_group"} - set(splits[split].columns)
        if missing:
            raise ValueError(f"splits[{split!r}] lacks columns {sorted(missing)}: load it with samesame.data.listings.load_dataset")


def _run_trunk(splits: dict[str, pd.DataFrame], settings: FinetuneSettings, seed: int, cache_dir, progress) -> _Trunk:
    """Cut the pretrained backbone and run its frozen trunk once over every train view and test image."""
    keras.utils.set_random_seed(seed)
    base = load_backbone(settings.backbone, input_size=settings.image_size)
    cut = cut_layer(base.model, settings.unfreeze)
    trunk_model, tail = split_backbone(base.model, cut)
    trunk = Backbone(f"{settings.backbone}-trunk-{cut}", trunk_model, settings.image_size,
                     int(np.prod(trunk_model.output_shape[1:])), base.weights)
    train_views = trunk_views(splits["train"]["image_path"].tolist(), trunk, settings.views, seed,
                              batch_size=settings.batch_size, cache_dir=cache_dir, progress=progress,
                              desc="trunk train")
    test_views = trunk_views(splits["test"]["image_path"].tolist(), trunk, 1, seed, batch_size=settings.batch_size,
                             cache_dir=cache_dir, progress=progress, desc="trunk test")
    return _Trunk(base, cut, tail, train_views, test_views)


def _fit_split(train: pd.DataFrame, views: TrunkViews, fraction: float, seed: int) -> _FitSplit:
    """Hold out ``fraction`` of the train groups for selection; the models learn the rest's usable images."""
    held = holdout_groups(train, fraction, seed)
    rows = np.flatnonzero(~held & views.ok)  # placeholder images would teach grey = this group
    classes, labels = np.unique(train["label_group"].to_numpy()[rows], return_inverse=True)
    return _FitSplit(held, rows, classes, labels)


def _skipped(fit: _FitSplit, views: TrunkViews, models_dir: str | Path | None) -> FinetuneResult:
    """The result (and, in ``models_dir``, the summary) of a grid with too few images to learn from."""
    unusable = int((~views.ok).sum())
    reason = (f"skipped: only {fit.learnable} train groups have two or more usable images (need "
              f"{MIN_LEARNABLE_GROUPS}); {unusable} of {len(views.status)} train images are "
              "missing or unreadable, so images are matched with the pretrained backbone (03)")
    result = FinetuneResult(pd.DataFrame(columns=TABLE_COLUMNS), {}, pd.DataFrame(columns=CURVE_COLUMNS), None,
                            {"n_fit": len(fit.rows), "n_train_unusable": unusable}, reason)
    if models_dir is not None:     # the summary is 04's artefact (make's DAG): it says "skipped" too
        clear_models(Path(models_dir))
        write_summary(Path(models_dir), result.metrics())
    return result


def train_config(trunk: _Trunk, fit: _FitSplit, head: str, mode: str, settings: FinetuneSettings,
                 seed: int) -> Iterator[tuple[int, dict, keras.Model]]:
    """Train one (head, unfreeze) from the pretrained tail; yield (epoch, stats, embedder) after each epoch.

    The seed is set again first, so every config starts from the same draws whatever ran before it. The
    embedder goes on training after the yield: score it before asking for the next epoch.
    """
    keras.utils.set_random_seed(seed)
    trainer, embedder, arcface = build_models(trunk.tail, unfrozen_layers(trunk.base.model, mode), head,
                                              len(fit.classes), arcface_scale=settings.arcface_scale,
                                              arcface_margin=settings.arcface_margin)
    trainer.compile(keras.optimizers.Adam(settings.lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    for epoch, stats in train_epochs(trainer, arcface, trunk.train.features[fit.rows], fit.labels,
                                     epochs=max(settings.epochs), batch_size=settings.batch_size, seed=seed,
                                     margin=settings.arcface_margin, margin_ramp_epochs=settings.margin_ramp_epochs):
        yield epoch, stats, embedder


@dataclass
class _Scores:
    """Scores snapshots into table rows and curve points, and selects: it keeps the embeddings of the row with
    the best held-out score so far (the first of equals), so only one row's vectors stay in memory."""

    trunk: _Trunk
    held: np.ndarray
    labels: dict[str, pd.Series]
    batch_size: int
    rows: list[dict] = field(default_factory=list)
    curves: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=dict)      # {"score": selection_mean_f1, "signal": its ImageSignal}

    def __post_init__(self):
        # every epoch is scored on the held-out groups too, so the curves show over-fitting where it starts
        self.held_views = TrunkViews(self.trunk.train.features[self.held, :1], self.trunk.train.status[self.held])

    def row(self, name: str, embedder: keras.Model, **config) -> ImageSignal:
        """Score a snapshot as a table row (train/test as every signal, and on the selection groups)."""
        weights = (f"fine-tuned on train groups from {self.trunk.base.weights}" if config["epochs"]
                   else self.trunk.base.weights)
        signal = ImageSignal(name, weights, {"train": embed_features(embedder, self.trunk.train, self.batch_size),
                                             "test": embed_features(embedder, self.trunk.test, self.batch_size)})
        selection, selection_threshold = best_mean_f1(subset(signal.embeddings["train"], np.flatnonzero(self.held)),
                                                      self.labels["train"][self.held])
        summary = signal.tune(self.labels).summary()
        self.rows.append({"model": name, **config, "weights": signal.weights, "threshold": summary["threshold"],
                          "train_mean_f1": summary["train_mean_f1"], "test_mean_f1": summary["test_mean_f1"],
                          "selection_mean_f1": round(selection, 4), "selection_threshold": selection_threshold})
        return signal

    def select(self, signal: ImageSignal) -> None:
        """Keep ``signal`` (the last row's) when that row beats every earlier one on the selection groups."""
        if not self.best or self.rows[-1]["selection_mean_f1"] > self.best["score"]:
            self.best.update(score=self.rows[-1]["selection_mean_f1"], signal=signal)

    def curve(self, head: str, mode: str, epoch: int, stats: dict, embedder: keras.Model) -> None:
        """One training curve point: the epoch's loss and accuracy, and its mean F1 on the selection groups."""
        held_f1 = best_mean_f1(embed_features(embedder, self.held_views, self.batch_size),
                               self.labels["train"][self.held])[0]
        self.curves.append({"config": f"{head}-{mode}", "head": head, "unfreeze": mode, "epoch": epoch, **stats,
                            "selection_mean_f1": round(held_f1, 4)})

    def chosen(self) -> tuple[pd.DataFrame, dict]:
        """(the table, its row with the best selection_mean_f1: the first of equals, as :meth:`select` keeps)."""
        table = pd.DataFrame(self.rows)
        return table, table.loc[table["selection_mean_f1"].idxmax()].to_dict()


def finetune_grid(splits: dict[str, pd.DataFrame], settings: FinetuneSettings, *, seed: int,
                  models_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                  progress: bool = True) -> FinetuneResult:
    """Fine-tune ``settings.backbone`` for every (head, unfreeze) and report each epoch snapshot.

    splits: {"train": ..., "test": ...} listings with image_path and label_group. Only
    the train split trains and selects; test is embedded and scored for the table.
    The table's first row is the pretrained backbone itself (same image size, same
    protocol), which selection may also pick. models_dir: every row's embedder and
    embeddings are written there (read them back with :func:`.files.stored_finetune`); about
    (n_train + n_test) * 1280 * 4 bytes of embeddings plus ~4 MB of weights per row for Lite0.
    """
    _check_splits(splits)
    if settings.views < 1 or not settings.epochs or min(settings.epochs) < 1:
        raise ValueError(f"need n_views >= 1 and epochs >= 1, got n_views={settings.views}, "
                         f"epochs={tuple(settings.epochs)}")
    train, backbone = splits["train"], settings.backbone
    started = time.perf_counter()
    trunk = _run_trunk(splits, settings, seed, cache_dir, progress)
    trunk_s = time.perf_counter() - started
    fit = _fit_split(train, trunk.train, settings.selection_fraction, seed)
    if fit.learnable < MIN_LEARNABLE_GROUPS:
        return _skipped(fit, trunk.train, models_dir)
    scores = _Scores(trunk, fit.held, {s: splits[s]["label_group"] for s in ("train", "test")}, settings.batch_size)
    if models_dir is not None:
        clear_models(Path(models_dir))

    def keep(name: str, embedder: keras.Model, **config) -> None:    # score, save and select one snapshot
        signal = scores.row(name, embedder, **config)
        if models_dir is not None:
            save_row(Path(models_dir), name, embedder, signal)
        scores.select(signal)

    features = keras.Input(trunk.tail.input_shape[1:], name="trunk_features")
    keep(f"{backbone}-pretrained", keras.Model(features, trunk.tail(features)), head="none", unfreeze="none", epochs=0)
    configs = [(h, u) for h in settings.heads for u in settings.unfreeze]
    with tqdm(total=len(configs) * max(settings.epochs), desc="fine-tune", unit="epoch", disable=not progress) as bar:
        for head, mode in configs:
            for epoch, stats, embedder in train_config(trunk, fit, head, mode, settings, seed):
                scores.curve(head, mode, epoch, stats, embedder)
                if epoch in settings.epochs:
                    keep(f"{backbone}-{head}-{mode}-e{epoch}", embedder, head=head, unfreeze=mode, epochs=epoch)
                bar.update(1)

    table, best = scores.chosen()
    info = {"backbone": backbone, "image_size": settings.image_size, "cut_layer": trunk.cut,
            "n_views": settings.views, "n_fit": len(fit.rows), "n_train_unusable": int((~trunk.train.ok).sum()),
            "n_fit_groups": len(fit.classes),
            "fit_groups": [int(g) for g in fit.classes],   # what the models memorised: the matcher fit tunes without them
            "selection_fraction": settings.selection_fraction, "seed": seed, "n_selection": int(fit.held.sum()),
            "n_selection_groups": int(train.loc[fit.held, "label_group"].nunique()),
            "trunk_cache_mb": round((trunk.train.features.nbytes + trunk.test.features.nbytes) / 2**20, 1),
            "trunk_seconds": round(trunk_s, 1), "total_seconds": round(time.perf_counter() - started, 1)}
    result = FinetuneResult(table, best, pd.DataFrame(scores.curves), scores.best["signal"], info)
    if models_dir is not None:
        write_summary(Path(models_dir), result.metrics())
    return result
