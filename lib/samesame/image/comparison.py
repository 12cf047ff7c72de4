"""Image embeddings as a matching signal: embed both splits, search, tune on train, report both.

This is what 03_backbone_compare and 05_metric compute, kept here so it is tested
and shared: a backbone whose weights cannot be had becomes a *skipped* row with
its reason, never a silently random model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from samesame.core.neighbors import TunedThreshold, exclude_rows, knn, threshold_grid, tune_threshold
from samesame.image.backbones import Backbone, BackboneUnavailable, load_backbone
from samesame.image.embed import Embeddings, embed_images
from samesame.image.retrieval import (Levers, LeverStudy, Whitening, flip_average, held_out_f1, lever_study, mirrored,
                                      score_levers)

MIN_LEVER_IMAGES = 50  # usable train images below which the levers' folds would score noise: they are skipped

SPLITS = ("train", "test")


@dataclass
class ImageSignal:
    """One backbone's embeddings of both splits (vectors, per-image status)."""

    backbone: str
    weights: str
    embeddings: dict[str, Embeddings] = field(default_factory=dict)

    def knn(self, split: str, metric: str = "cosine") -> tuple[np.ndarray, np.ndarray]:
        """kNN within one split; listings without a usable image match only themselves here."""
        emb = self.embeddings[split]
        return exclude_rows(*knn(emb.vectors, metric=metric), emb.ok)

    def as_fusion_inputs(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{split: (vectors, usable mask)}, the form fit_matcher / Matcher.predict take."""
        return {split: (emb.vectors, emb.ok) for split, emb in self.embeddings.items()}

    def tune(self, labels: dict[str, pd.Series], metric: str = "cosine") -> TunedThreshold:
        """Threshold tuned on train, test reported at it."""
        train_knn, test_knn = self.knn("train", metric), self.knn("test", metric)
        return tune_threshold(train_knn, labels["train"], test_knn, labels["test"], threshold_grid(train_knn[0]))


def embed_splits(backbone: str | Backbone, splits: dict[str, pd.DataFrame], *, input_size: int | None = None,
                 batch_size: int, cache_dir: str | Path | None = None, progress: bool = True) -> ImageSignal:
    """Embed every split's images with a backbone or a registry name (raises BackboneUnavailable with the reason)."""
    if isinstance(backbone, str):
        weights = None if backbone.startswith("random_") else "imagenet"
        backbone = load_backbone(backbone, input_size=input_size, weights=weights)
    signal = ImageSignal(backbone.name, backbone.weights)
    for split, df in splits.items():
        signal.embeddings[split] = embed_images(df["image_path"].tolist(), backbone, batch_size=batch_size,
                                                cache_dir=cache_dir, progress=progress)
    return signal


def compare_backbones(names: list[str], splits: dict[str, pd.DataFrame], **embed_kwargs
                      ) -> tuple[pd.DataFrame, dict[str, ImageSignal]]:
    """The seed's table (Model | train / test mean F1) for every backbone; skipped ones say why.

    Returns the table (one row per backbone, columns weights, threshold,
    train_mean_f1, test_mean_f1) and the embeddings of those that ran.
    """
    labels = {s: splits[s]["label_group"] for s in SPLITS}
    rows, signals = [], {}
    for name in names:
        try:
            signal = embed_splits(name, splits, **embed_kwargs)
        except BackboneUnavailable as err:
            rows.append({"model": name, "weights": f"skipped: {err.reason}"})
            continue
        signals[name] = signal
        rows.append({"model": name, "weights": signal.weights, **signal.tune(labels).summary()})
    table = pd.DataFrame(rows).set_index("model")
    return table, signals


def best_backbone(table: pd.DataFrame, pretrained_only: bool = True) -> str:
    """The backbone with the best *train* mean F1 (never chosen by test)."""
    ran = table.dropna(subset=["train_mean_f1"])
    if pretrained_only:
        ran = ran[ran["weights"].str.startswith("imagenet")]
    if ran.empty:
        raise ValueError("no backbone ran: see the 'weights' column for why each was skipped")
    return str(ran["train_mean_f1"].idxmax())


def with_reference(table: pd.DataFrame, phash_metrics: dict | None) -> pd.DataFrame:
    """The table plus the phash row from 02_phash (when it ran), as in the seed's comparison."""
    if not phash_metrics:
        return table
    ref = {k: phash_metrics.get(k) for k in ("threshold", "train_mean_f1", "test_mean_f1")}
    return pd.concat([table, pd.DataFrame([{"weights": "reference (02_phash)", **ref}], index=["phash"])])


def table_metrics(table: pd.DataFrame) -> dict:
    """metrics.json object: {backbone: {weights, train_mean_f1, test_mean_f1, threshold}, "best": name}."""
    out = {name: {k: v for k, v in row.items() if pd.notna(v)} for name, row in table.iterrows() if name != "phash"}
    out["best"] = best_backbone(table.drop(index="phash", errors="ignore"))
    return out


def metric_table(tuned: dict[str, TunedThreshold]) -> pd.DataFrame:
    """The seed's distance table: one row per metric with its train-tuned threshold and both F1s."""
    return pd.DataFrame({metric: t.summary() for metric, t in tuned.items()}).T.rename_axis("distance")


@dataclass
class EmbeddingChoice:
    """05's levers on a pretrained backbone: the study on train's group folds, the kept levers, their whitening,
    their score on 04's selection groups (to compare with a fine-tuned model) and the seed-style row."""

    study: LeverStudy | None
    chosen: Levers
    whitening: Whitening | None
    final: dict            # threshold, train/test mean F1 of the kept levers fitted on the whole train split
    selection_f1: float | None = None   # on the held rows given to embedding_levers (04's selection groups)
    skipped: str | None = None

    @property
    def noise(self) -> float:
        """The kept row's std over the folds: how much a rival must win by to count."""
        if self.study is None:
            return 0.0
        return float(self.study.table.set_index("levers").loc[self.chosen.name, "std_f1"])

    def metrics(self) -> dict:
        out = {"chosen": self.chosen.name, "final": self.final, "selection_mean_f1": self.selection_f1}
        if self.study is not None:
            out["table"] = self.study.table.to_dict("records")
        return out if self.skipped is None else {**out, "skipped": self.skipped}


def embedding_levers(backbone: Backbone, plain: ImageSignal, splits: dict[str, pd.DataFrame], *, seed: int,
                     held: np.ndarray | None = None, progress: bool = True, **embed_kwargs) -> EmbeddingChoice:
    """Measure flip TTA, PCA whitening and query expansion on the train split's group folds
    (:func:`samesame.image.retrieval.lever_study`), keep what wins, and fit the kept whitening on the whole train split.

    ``backbone`` must not have trained on these groups (a pretrained one), or the folds are not unseen.
    ``plain``: its embeddings of both splits (03's, cached); only the mirror images are embedded here. ``held``: train
    rows (04's selection groups) on which the kept levers are also scored, whitening fitted on the other rows.
    """
    labels = {s: splits[s]["label_group"].to_numpy() for s in SPLITS}
    pools = {s: (plain.embeddings[s].vectors, plain.embeddings[s].ok) for s in SPLITS}
    usable = int(pools["train"][1].sum())
    if usable < MIN_LEVER_IMAGES:
        final = score_levers(Levers(), pools["train"], labels["train"], pools["test"], labels["test"])
        return EmbeddingChoice(None, Levers(), None, final, skipped=f"skipped: {usable} usable train images (need "
                               f"{MIN_LEVER_IMAGES} to compare levers on group folds); the plain embedding is kept")
    mirror = embed_splits(mirrored(backbone), splits, progress=progress, **embed_kwargs).embeddings
    flipped = {s: (flip_average(pools[s][0], mirror[s].vectors), pools[s][1] & mirror[s].ok) for s in SPLITS}
    study = lever_study(pools["train"], flipped["train"], labels["train"], seed=seed, progress=progress)
    chosen = study.chosen
    source = flipped if chosen.flip else pools
    whitening = Whitening.fit(*source["train"], dims=chosen.whiten) if chosen.whiten else None
    final = score_levers(chosen, source["train"], labels["train"], source["test"], labels["test"])
    selection = None if held is None else round(held_out_f1(chosen, *source["train"], labels["train"], held), 4)
    return EmbeddingChoice(study, chosen, whitening, final, selection)
