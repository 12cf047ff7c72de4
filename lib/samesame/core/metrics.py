"""The competition metric: mean per-listing F1 between predicted and true match sets.

Shopee scores each listing by the F1 of its predicted set against its true group
(the listing itself belongs to both), then averages over listings. Large groups
therefore weigh in proportion to their size, and a listing predicted alone still
earns ``2 / (1 + group size)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from samesame.core.splits import group_folds, label_codes


@dataclass(frozen=True)
class Scores:
    """Means of per-listing precision, recall and F1, plus the per-listing table (built when first read:
    the tuning grids score thousands of masks and read only the means)."""

    mean_f1: float
    mean_precision: float
    mean_recall: float
    counts: dict[str, np.ndarray] = field(repr=False)    # n_pred, n_true, n_hit, precision, recall, f1 per listing
    index: Sequence | None = field(default=None, repr=False)

    @cached_property
    def per_row(self) -> pd.DataFrame:
        return pd.DataFrame(self.counts, index=None if self.index is None else pd.Index(self.index, name="posting_id"))

    def fold_f1(self, labels: Sequence, k: int = 5, seed: int = 0) -> np.ndarray:
        """Mean F1 within each of ``k`` folds of label groups: how much the score moves between pools of groups.

        One split's mean is one draw; the spread over folds says how far a hold-out of
        other groups may land from it (report mean +- std, not the mean alone).
        """
        folds = group_folds(labels, k, seed)
        return np.array([self.counts["f1"][folds == f].mean() for f in range(k) if np.any(folds == f)])

    def as_dict(self) -> dict[str, float]:
        return {
            "mean_f1": round(self.mean_f1, 4),
            "mean_precision": round(self.mean_precision, 4),
            "mean_recall": round(self.mean_recall, 4),
        }


def scores_from_counts(n_pred: np.ndarray, n_true: np.ndarray, n_hit: np.ndarray, index: Sequence | None = None) -> Scores:
    """Precision/recall/F1 from set sizes; an empty prediction scores 0, never NaN. ``index``: row names (posting ids)."""
    if len(n_pred) == 0:
        raise ValueError("cannot score zero listings")
    n_pred = n_pred.astype(float)
    n_true = n_true.astype(float)
    n_hit = n_hit.astype(float)
    precision = np.divide(n_hit, n_pred, out=np.zeros_like(n_hit), where=n_pred > 0)
    recall = np.divide(n_hit, n_true, out=np.zeros_like(n_hit), where=n_true > 0)
    denom = n_pred + n_true
    f1 = np.divide(2 * n_hit, denom, out=np.zeros_like(n_hit), where=denom > 0)
    counts = {"n_pred": n_pred.astype(int), "n_true": n_true.astype(int), "n_hit": n_hit.astype(int),
              "precision": precision, "recall": recall, "f1": f1}
    return Scores(float(f1.mean()), float(precision.mean()), float(recall.mean()), counts, index)


def score_matches(matches: Sequence[np.ndarray], labels: Sequence, scored: np.ndarray | None = None) -> Scores:
    """Score row-position match arrays against group labels (the fast path for experiments).

    ``matches[i]`` holds the row positions predicted to be the same product as row
    ``i``; duplicates are ignored. ``labels[i]`` is row i's label_group. ``scored`` (bool per row): score only
    those listings; the others were searched too (a pool padded with distractors) but their F1 does not count.
    """
    labels = np.asarray(labels)
    if len(matches) != len(labels):
        raise ValueError(f"{len(matches)} match sets for {len(labels)} labelled listings")
    codes, counts = label_codes(labels)
    n_pred = np.empty(len(labels), dtype=np.int64)
    n_hit = np.empty(len(labels), dtype=np.int64)
    for i, m in enumerate(matches):
        m = np.unique(np.asarray(m, dtype=np.int64))
        n_pred[i] = len(m)
        n_hit[i] = int(np.count_nonzero(codes[m] == codes[i])) if len(m) else 0
    rows = slice(None) if scored is None else np.asarray(scored, dtype=bool)
    return scores_from_counts(n_pred[rows], counts[codes][rows], n_hit[rows])


def score_id_sets(predicted: Mapping[str, Iterable[str]], truth: Mapping[str, Iterable[str]]) -> Scores:
    """Score posting-id sets (e.g. a submission against a solution file), keyed by posting_id.

    Every listing in ``truth`` is scored; one missing from ``predicted`` scores 0.
    """
    ids = list(truth)
    pred_sets = [set(predicted.get(pid, ())) for pid in ids]
    true_sets = [set(truth[pid]) for pid in ids]
    n_hit = np.array([len(p & t) for p, t in zip(pred_sets, true_sets)])
    return scores_from_counts(np.array([len(p) for p in pred_sets]), np.array([len(t) for t in true_sets]), n_hit,
                              index=ids)


def parse_matches_column(series: pd.Series) -> dict[str, list[str]]:
    """Kaggle's ``matches`` column (space-separated posting ids) as a dict keyed by the index."""
    return {pid: str(m).split() for pid, m in series.items()}
