"""Titles as token batches for the title transformer: ragged token ids, and batches of similar length.

Why by length: titles run from a handful of tokens to ``max_len`` (median ~21 on Shopee); a batch padded to its
own longest title, rounded up to PAD_TO, wastes little compute, and Keras traces few shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

PAD_TO = 8         # sequence lengths are padded up to a multiple of this (fewer traced shapes)


@dataclass
class Tokens:
    """Token ids of many titles, ragged (flat ids + offsets)."""

    ids: np.ndarray
    offsets: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def positions(self, rows: np.ndarray) -> np.ndarray:
        """Flat token positions of ``rows``, in row order (where their tokens sit in ``ids``)."""
        return np.concatenate([np.arange(self.offsets[r], self.offsets[r + 1]) for r in rows])

    def padded(self, rows: np.ndarray, values: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``values`` (ids if None) of ``rows`` padded to the longest, rounded up to PAD_TO; and the mask."""
        values = self.ids if values is None else values
        lengths = self.lengths[rows]
        width = int(-(-lengths.max() // PAD_TO) * PAD_TO)
        mask = (np.arange(width)[None, :] < lengths[:, None])
        out = np.zeros((len(rows), width, *values.shape[1:]), dtype=values.dtype)
        out[mask] = values[self.positions(rows)]
        return out, mask.astype(np.float32)


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None = None,
                   window: int = 50) -> Iterator[np.ndarray]:
    """Row batches of similar length; with ``rng``, shuffled within windows of ``window`` batches, smallest first."""
    if rng is None:
        order = np.argsort(lengths, kind="stable")
    else:
        order = rng.permutation(len(lengths))
        span = batch_size * window
        order = np.concatenate([c[np.argsort(lengths[c], kind="stable")] for c in np.array_split(
            order, max(1, -(-len(order) // span)))])
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
        # the partial batch first: the first two training steps then differ in both dimensions, so Keras'
        # reduce_retracing traces a shape-generic step at the second and never a third (~6 s less per encoder)
        batches.insert(0, batches.pop(int(np.argmin([len(b) for b in batches]))))
    yield from batches
