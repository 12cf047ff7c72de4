"""Training-free levers on image embeddings: flip test-time augmentation, PCA whitening, query expansion.

Why: pretrained CNN features put most of their variance in a few directions that say "photo of
an object on a background", not "this product"; whitening fitted on the train split spreads it
out, so cosine compares what differs between products (on real seller vs buyer photos it gained
more than fine-tuning, without memorising the training products). A mirrored copy of the photo
averages away the pose a seller or buyer happened to shoot; query expansion pulls each vector
towards its nearest neighbours (the matcher's neighbourhood blend does the same for fused scores).

:func:`lever_study` measures each combination on label-group folds of the train split, so a lever
is kept only where it wins on groups it never saw.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import keras
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from samesame.core.files import replaced_file
from samesame.core.neighbors import exclude_rows, knn, l2_normalize, sweep_thresholds, tune_threshold
from samesame.core.splits import group_folds
from samesame.image.backbones import Backbone

WHITEN_EPS = 0.1   # eigenvalue floor as a share of the mean eigenvalue: keeps noise directions from exploding
LEVER_FOLDS = 3    # label-group folds of the train split each lever is scored on
FOLD_SEED_SALT = 104729  # the train split holds the groups whose split hash is high: the folds must hash anew
THRESHOLDS = np.round(np.arange(0.02, 0.9, 0.01), 3)  # cosine distances swept (whitened vectors spread wider)


@dataclass(frozen=True)
class Whitening:
    """PCA whitening fitted on L2-normalised train vectors: ``(x - mean) @ projection``, then L2 again."""

    mean: np.ndarray        # (dim,)
    projection: np.ndarray  # (dim, dims)

    @classmethod
    def fit(cls, vectors: np.ndarray, ok: np.ndarray | None = None, dims: int = 256,
            eps: float = WHITEN_EPS) -> "Whitening":
        """Fit on the usable rows; ``dims`` is capped by the rank the rows can support."""
        x = l2_normalize(vectors)[_usable(vectors, ok)].astype(np.float64)
        if len(x) < 3:
            raise ValueError(f"whitening needs at least 3 usable vectors, got {len(x)}")
        mean = x.mean(axis=0)
        values, vecs = np.linalg.eigh(np.cov(x - mean, rowvar=False))
        order = np.argsort(values)[::-1][: min(dims, len(x) - 1, x.shape[1])]
        scale = np.sqrt(np.maximum(values[order], 0) + eps * values.clip(min=0).mean())
        return cls(mean.astype(np.float32), (vecs[:, order] / scale).astype(np.float32))

    @property
    def dims(self) -> int:
        return int(self.projection.shape[1])

    def apply(self, vectors: np.ndarray, ok: np.ndarray | None = None) -> np.ndarray:
        """Whitened, L2-normalised vectors; rows without a usable image stay all-zero."""
        out = l2_normalize((l2_normalize(vectors) - self.mean) @ self.projection)
        out[~_usable(vectors, ok)] = 0.0
        return out

    def save(self, path: str | Path) -> None:
        """One .npz, written via a temporary file so a killed run never leaves half of it."""
        with replaced_file(path) as tmp:
            np.savez(tmp, mean=self.mean, projection=self.projection)

    @classmethod
    def load(cls, path: str | Path) -> "Whitening":
        try:
            with np.load(path, allow_pickle=False) as stored:
                mean, projection = stored["mean"], stored["projection"]
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"{path}: not a whitening file ({type(err).__name__}: {err}); rerun 05_metric "
                             "(make metric RUN=...) to write it again") from err
        if mean.ndim != 1 or projection.shape[:1] != mean.shape:
            raise ValueError(f"{path}: mean {mean.shape} and projection {projection.shape} do not fit together; "
                             "rerun 05_metric to write it again")
        return cls(mean, projection)


def _usable(vectors: np.ndarray, ok: np.ndarray | None) -> np.ndarray:
    return np.ones(len(vectors), bool) if ok is None else np.asarray(ok, bool)


def mirrored(backbone: Backbone) -> Backbone:
    """The backbone run on each image's mirror image: the half of flip TTA that the plain embeddings lack, so
    05 embeds (and caches) only that half (:func:`flip_average`)."""
    image = keras.Input((backbone.input_size, backbone.input_size, 3), name="image")
    return Backbone(f"{backbone.name}+mirror", keras.Model(image, backbone.model(keras.ops.flip(image, axis=2)),
                                                           name=f"{backbone.model.name}_mirror"),
                    backbone.input_size, backbone.dim, backbone.weights)


def with_flip_tta(backbone: Backbone) -> Backbone:
    """The backbone averaging the L2-normalised embeddings of each image and its mirror image."""
    image = keras.Input((backbone.input_size, backbone.input_size, 3), name="image")
    unit = keras.layers.UnitNormalization()
    mean = keras.layers.Average(name="flip_tta")([unit(backbone.model(image)), unit(mirrored(backbone).model(image))])
    return Backbone(f"{backbone.name}+flip", keras.Model(image, mean, name=f"{backbone.model.name}_flip"),
                    backbone.input_size, backbone.dim, backbone.weights)


def flip_average(plain: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """What :func:`with_flip_tta` computes, from plain and :func:`mirrored` embeddings (zero rows stay zero)."""
    return (l2_normalize(plain) + l2_normalize(mirror)) / 2


def query_expansion(vectors: np.ndarray, ok: np.ndarray | None = None, k: int = 3, alpha: float = 3.0) -> np.ndarray:
    """alpha-QE: each vector becomes the similarity^alpha-weighted mean of itself and its k-1 nearest
    usable neighbours in the same pool (rows without a usable image stay as they are)."""
    usable = _usable(vectors, ok)
    x = l2_normalize(vectors)
    if usable.sum() < 2 or k < 2:
        return x
    dist, idx = exclude_rows(*knn(x, k=min(k, len(x))), usable)
    weight = np.where(np.isfinite(dist), np.clip(1 - dist, 0, None) ** alpha, 0.0)
    out = l2_normalize((x[idx] * weight[..., None]).sum(axis=1))
    out[~usable] = x[~usable]
    return out


@dataclass(frozen=True)
class Levers:
    """One combination of the training-free levers."""

    flip: bool = False
    whiten: int = 0          # whitened dimensions (0: off)
    query_expansion: int = 0  # neighbours averaged (0: off)

    @property
    def name(self) -> str:
        parts = (["flip TTA"] if self.flip else []) + ([f"PCA whitening {self.whiten}"] if self.whiten else []) + (
            [f"query expansion {self.query_expansion}"] if self.query_expansion else [])
        return " + ".join(parts) or "plain"

    @property
    def cost(self) -> int:
        return int(self.flip) + int(bool(self.whiten)) + int(bool(self.query_expansion))


def transform(levers: Levers, fit: np.ndarray, fit_ok: np.ndarray, pools: Sequence[tuple[np.ndarray, np.ndarray]]
              ) -> list[np.ndarray]:
    """Each pool's vectors with ``levers`` applied, whitening fitted on ``fit`` (flip is in the vectors already)."""
    whitening = Whitening.fit(fit, fit_ok, levers.whiten) if levers.whiten else None
    out = []
    for vectors, ok in pools:
        x = whitening.apply(vectors, ok) if whitening else l2_normalize(vectors)
        out.append(query_expansion(x, ok, levers.query_expansion) if levers.query_expansion else x)
    return out


def _search(vectors: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return exclude_rows(*knn(vectors), ok)


def score_levers(levers: Levers, train: tuple[np.ndarray, np.ndarray], train_labels,
                 test: tuple[np.ndarray, np.ndarray], test_labels) -> dict:
    """Fit on train (whitening, threshold), score test at train's threshold: train and test mean F1."""
    a, b = transform(levers, *train, [train, test])
    tuned = tune_threshold(_search(a, train[1]), train_labels, _search(b, test[1]), test_labels, THRESHOLDS)
    summary = tuned.summary()
    return {"threshold": tuned.threshold, "train_mean_f1": round(float(summary["train_mean_f1"]), 4),
            "test_mean_f1": round(float(summary["test_mean_f1"]), 4)}


def held_out_f1(levers: Levers, vectors: np.ndarray, ok: np.ndarray, labels, held: np.ndarray) -> float:
    """Best mean F1 on the ``held`` rows alone, whitening fitted on the others: the score 04 selects
    fine-tuned models by, so a pretrained model with levers and a fine-tuned one compare on the same groups."""
    held = np.asarray(held, bool)
    (pool,) = transform(levers, vectors[~held], ok[~held], [(vectors[held], ok[held])])
    return float(sweep_thresholds(*_search(pool, ok[held]), np.asarray(labels)[held], THRESHOLDS)["mean_f1"].max())


def lever_grid(whiten_dims: Sequence[int] = (128, 256), query_expansion: int = 3) -> list[Levers]:
    """Every combination of flip TTA on/off, no or each whitening size, query expansion off/on."""
    return [Levers(f, w, q) for f, w, q in itertools.product((False, True), (0, *whiten_dims), (0, query_expansion))]


@dataclass
class LeverStudy:
    """Held-out scores of every lever combination, and the one kept."""

    table: pd.DataFrame  # levers, fold_<k>, mean_f1, std_f1, train_mean_f1 (mean over folds)
    chosen: Levers

    def to_dict(self) -> dict:
        return {"chosen": self.chosen.__dict__ | {"name": self.chosen.name}, "table": self.table.to_dict("records")}


def lever_study(plain: tuple[np.ndarray, np.ndarray], flipped: tuple[np.ndarray, np.ndarray], labels,
                grid: Sequence[Levers] | None = None, folds: int = LEVER_FOLDS, seed: int = 0,
                progress: bool = True) -> LeverStudy:
    """Score each lever combination on ``folds`` label-group folds of one split (whitening and threshold
    fitted on the other folds). ``plain``/``flipped``: (vectors, usable) without / with flip TTA.

    Kept, among the combinations an image model can carry (query expansion works on a whole pool, so it
    ships as the matcher's neighbourhood blend instead): the best mean held-out F1, unless a combination
    with fewer levers is within a third of its std (a lever must win by more than the folds' noise).
    """
    labels = np.asarray(labels)
    fold = group_folds(labels, folds, seed + FOLD_SEED_SALT)
    if len(np.unique(fold)) < folds:
        raise ValueError(f"{len(np.unique(labels))} label groups fill only {len(np.unique(fold))} of {folds} folds: "
                         "the levers need more groups (or fewer folds)")
    rows = []
    for levers in tqdm(grid or lever_grid(), desc="embedding levers", disable=not progress):
        vectors, ok = flipped if levers.flip else plain
        scores = [score_levers(levers, (vectors[fold != k], ok[fold != k]), labels[fold != k],
                               (vectors[fold == k], ok[fold == k]), labels[fold == k]) for k in range(folds)]
        held = [s["test_mean_f1"] for s in scores]
        rows.append({"levers": levers.name, **{f"fold_{k}": f for k, f in enumerate(held)},
                     "mean_f1": round(float(np.mean(held)), 4), "std_f1": round(float(np.std(held)), 4),
                     "train_mean_f1": round(float(np.mean([s["train_mean_f1"] for s in scores])), 4),
                     "_levers": levers})
    table = pd.DataFrame(rows)
    carried = table[[not lv.query_expansion for lv in table["_levers"]]]
    best = carried.loc[carried["mean_f1"].idxmax()]
    near = carried[carried["mean_f1"] >= best["mean_f1"] - best["std_f1"] / 3]
    chosen = min(near["_levers"], key=lambda lv: (lv.cost, -table.set_index("levers").loc[lv.name, "mean_f1"]))
    return LeverStudy(table.drop(columns="_levers"), chosen)




def with_whitening(backbone: Backbone, whitening: Whitening, digest: str) -> Backbone:
    """The backbone followed by the fitted whitening (unit-normalise, project, unit-normalise) as Keras layers,
    so embedding caches, saved matchers and the Kaggle notebook treat it as one image model."""
    image = keras.Input((backbone.input_size, backbone.input_size, 3), name="image")
    unit = keras.layers.UnitNormalization()(backbone.model(image))
    project = keras.layers.Dense(whitening.dims, name="whitening")
    out = keras.layers.UnitNormalization()(project(unit))
    project.set_weights([whitening.projection, -whitening.mean @ whitening.projection])
    return Backbone(f"{backbone.name}+pca{whitening.dims}", keras.Model(image, out, name="whitened"),
                    backbone.input_size, whitening.dims, f"{backbone.weights} [whitening {digest[:12]}]")


__all__ = ["LeverStudy", "Levers", "Whitening", "held_out_f1", "lever_grid", "lever_study", "query_expansion", "score_levers",
           "transform", "flip_average", "mirrored", "with_flip_tta", "with_whitening"]
