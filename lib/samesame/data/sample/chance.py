"""The seeded picks that planning and titles share: one element of a table, or one value of a weighted table."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _pick(rng: np.random.Generator, options: Sequence):
    """One element of ``options`` (keeps tuples intact, unlike ``rng.choice``)."""
    return options[int(rng.integers(len(options)))]


def _pick_weighted(rng: np.random.Generator, weighted: Sequence[tuple[object, float]]):
    """One value of ``(value, weight)`` pairs."""
    weights = np.array([w for _, w in weighted], dtype=float)
    return weighted[int(rng.choice(len(weighted), p=weights / weights.sum()))][0]
