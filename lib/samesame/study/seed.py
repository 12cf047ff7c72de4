"""The seed study's numbers, in one place: every answer cell and the results page compare with these.

The seed matched Shopee listings by image only and reported mean per-listing F1 on its
train and test splits; its EDA counted the full Kaggle ``train.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SeedScore:
    """One row of the seed's results table: a method and its mean F1 on train and test."""

    method: str
    train_mean_f1: float
    test_mean_f1: float


SEED = {
    "phash": SeedScore("perceptual hash", 0.596, 0.613),
    "pretrained": SeedScore("EfficientNetB0 transfer learning", 0.649, 0.671),
    "finetuned": SeedScore("fine-tuned (1 module, 6 epochs)", 0.686, 0.701),
    "cosine": SeedScore("cosine distance", 0.716, 0.724),
}
"""Keyed by step: each step of the seed's story builds on the previous one (Euclidean until "cosine")."""

SEED_BEST = SEED["cosine"]

SEED_EDA = {"n_postings": 34250, "n_groups": 11014, "groups_of_size_2": 6979, "share_square_images": 0.99}
"""The seed's counts on the full Kaggle train.csv (share of square images: "more than 99%")."""
