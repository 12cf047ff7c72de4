"""Where the matcher fails: per-listing errors, by group size, and which signal caused them."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from samesame.core.metrics import score_matches

SIZE_BINS = [1, 2, 3, 4, 9, 19, 50, np.inf]  # (a, b] intervals of group size
SIZE_LABELS = ["2", "3", "4", "5-9", "10-19", "20-50", "51+"]


def listing_errors(matches: Sequence[np.ndarray], labels: Sequence) -> pd.DataFrame:
    """Per listing: F1, group size, false positives and false negatives (counts)."""
    per_row = score_matches(matches, labels).per_row
    return per_row.assign(n_fp=per_row["n_pred"] - per_row["n_hit"], n_fn=per_row["n_true"] - per_row["n_hit"],
                          group_size=pd.cut(per_row["n_true"], SIZE_BINS, labels=SIZE_LABELS))


def errors_by_group_size(errors: pd.DataFrame) -> pd.DataFrame:
    """Mean F1, FP and FN per group-size bin, with each bin's share of the F1 lost."""
    table = errors.groupby("group_size", observed=True).agg(
        listings=("f1", "size"), mean_f1=("f1", "mean"), mean_fp=("n_fp", "mean"), mean_fn=("n_fn", "mean"))
    lost = (1 - errors["f1"]).groupby(errors["group_size"], observed=True).sum()
    table["share_of_f1_lost"] = (lost / lost.sum()).round(3)
    return table


def blame_signals(matches: Sequence[np.ndarray], labels: Sequence,
                  signal_matches: Mapping[str, Sequence[np.ndarray]]) -> pd.DataFrame:
    """Which signal proposed each false-positive pair, and which could have found each false negative.

    Rows are signals; ``false_positives`` counts wrong pairs in the final matches
    that the signal also proposed; ``false_negatives_found`` counts missed true
    pairs the signal had within its own threshold (a fusion rule dropped them);
    the row "none" counts missed pairs no signal found (recall lost upstream).
    """
    labels = np.asarray(labels)
    signal_sets = {name: [set(map(int, m)) for m in ms] for name, ms in signal_matches.items()}
    fp = dict.fromkeys(signal_sets, 0)
    fn = dict.fromkeys(list(signal_sets) + ["none"], 0)
    for i, m in enumerate(matches):
        chosen = set(map(int, m)) - {i}
        truth = set(np.flatnonzero(labels == labels[i]).tolist()) - {i}
        for j in chosen - truth:
            for name, sets in signal_sets.items():
                fp[name] += j in sets[i]
        for j in truth - chosen:
            finders = [name for name, sets in signal_sets.items() if j in sets[i]]
            for name in finders or ["none"]:
                fn[name] += 1
    return pd.DataFrame({"false_positives": pd.Series(fp), "false_negatives_found": pd.Series(fn)}).fillna(0).astype(int)


def worst_listings(errors: pd.DataFrame, n: int = 3, kind: str = "fp") -> list[int]:
    """Row positions of the listings with the most false positives (``kind="fp"``) or negatives ("fn")."""
    column = "n_fp" if kind == "fp" else "n_fn"
    ranked = errors[errors[column] > 0].sort_values([column, "f1"], ascending=[False, True])
    return [int(i) for i in ranked.index[:n]]


def error_metrics(by_size: pd.DataFrame, blame: pd.DataFrame) -> dict:
    """metrics.json object for 06: the group-size table and the per-signal blame counts."""
    return {"by_group_size": {str(k): v for k, v in by_size.round(4).to_dict("index").items()},
            "blame": blame.to_dict("index")}
