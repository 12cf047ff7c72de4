"""Label-group splits and folds: a listing's side is decided by its group, so no group is ever on both sides.

The side comes from a hash of (seed, label_group), never from the row order, so the same group lands on the
same side in the sample, the dev table and on Kaggle.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Split:
    """Which label groups are held out as the "test" split of train.csv (the study's validation)."""

    test_fraction: float            # share of label groups held out
    seed: int                       # which groups

    def apply(self, df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(train, test) listings of ``df``: :func:`split_by_group` with these settings."""
        return split_by_group(df, self.test_fraction, self.seed)


def label_codes(labels: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """(each row's group as a code 0..G-1, each group's size): what comparing and counting labels needs."""
    _, codes, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    return codes.ravel(), counts     # numpy 2 may shape the inverse like the input: always flat


def group_hash(group: int, seed: int) -> float:
    """A label group's position in [0, 1): a hash of (seed, group), stable across files and machines."""
    digest = hashlib.md5(f"{seed}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64


def group_folds(labels: Sequence, k: int = 5, seed: int = 0) -> np.ndarray:
    """Fold 0..k-1 of every row, by label group (a group's rows share a fold)."""
    if k < 2:
        raise ValueError(f"need at least 2 folds, got {k}")
    groups, inverse = np.unique(np.asarray(labels), return_inverse=True)
    folds = np.array([int(group_hash(int(g), seed) * k) for g in groups], dtype=np.int64)
    return folds[inverse.ravel()]


def split_by_group(df: pd.DataFrame, test_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic train/test split of whole label groups (no group is on both sides).

    A group goes to test when a hash of (seed, label_group) falls below
    ``test_fraction``; the same group lands on the same side whatever else is in the
    file, so results are comparable between the sample, the dev table and Kaggle.
    Both frames are re-indexed from 0 (row position = index).
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    groups = df["label_group"].unique()
    to_test = {g for g in groups if group_hash(int(g), seed) < test_fraction}
    is_test = df["label_group"].isin(to_test)
    return df[~is_test].reset_index(drop=True), df[is_test].reset_index(drop=True)


def sample_groups(df: pd.DataFrame, max_listings: int | None, seed: int = 0) -> pd.DataFrame:
    """Whole label groups of ``df`` holding at most ``max_listings`` listings (all of ``df`` when None or when it
    is no larger), re-indexed from 0.

    Why: some questions (which backbone, which embedding lever, what each signal buys) are answered as well on a
    few thousand listings as on 34,000, at a fraction of the time. Groups are taken in the order of a hash of
    (seed, group), so the same groups are taken whatever else is in the file, and no group is cut.
    """
    if max_listings is None or len(df) <= max_listings:
        return df.reset_index(drop=True)
    sizes = df["label_group"].value_counts()
    order = sorted(sizes.index, key=lambda g: group_hash(int(g), seed))
    taken, total = set(), 0
    for group in order:
        if total + sizes[group] <= max_listings:
            taken.add(group)
            total += sizes[group]
    return df[df["label_group"].isin(taken)].reset_index(drop=True)
