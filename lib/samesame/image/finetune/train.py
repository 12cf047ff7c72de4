"""Training the tail on cached trunk views, and the held-out-group scores that choose among its snapshots.

Model selection never sees the test split: ~20% of the train split's groups are held out (:func:`holdout_groups`),
the models learn the rest, and each snapshot is scored on the held-out groups (:func:`best_mean_f1`).
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import pandas as pd

from samesame.core.arcface import ArcFace, ramped_margin
from samesame.core.neighbors import best_threshold, exclude_rows, knn, sweep_thresholds, threshold_grid
from samesame.core.splits import split_by_group
from samesame.image.embed import Embeddings
from samesame.image.finetune.views import TrunkViews

VAL_SEED_SALT = 7919  # the internal split must not reuse the train/test split's hash (same seed = no groups)


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
    """The listings ``rows`` of ``emb``: the held-out groups' part of the train split's embeddings."""
    return Embeddings(vectors=emb.vectors[rows], status=emb.status[rows])


def holdout_groups(train: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of train rows whose group is held out for model selection (never the test split)."""
    _, held = split_by_group(train[["label_group"]], fraction, seed + VAL_SEED_SALT)
    is_held = train["label_group"].isin(set(held["label_group"])).to_numpy()
    if is_held.all() or not is_held.any():
        raise ValueError(f"holding out {fraction:.0%} of {train['label_group'].nunique()} train groups left "
                         f"{'nothing to train on' if is_held.all() else 'no groups to select on'}: "
                         "use more groups or change finetune.selection_fraction")
    return is_held

