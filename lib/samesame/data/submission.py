"""Kaggle's submission file: build it, check it before writing, score it when the truth is known."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from samesame.core.metrics import Scores, parse_matches_column, score_id_sets
from samesame.core.neighbors import MAX_MATCHES
from samesame.data.listings import id_differences


class SubmissionError(ValueError):
    """The submission would be rejected (or would silently lose listings)."""


def build_submission(df: pd.DataFrame, matches: Sequence[np.ndarray]) -> pd.DataFrame:
    """``posting_id,matches`` rows: each listing's matches as space-separated ids, self first, capped at 50."""
    if len(matches) != len(df):
        raise SubmissionError(f"{len(matches)} match sets for {len(df)} listings: every listing needs one")
    ids = df["posting_id"].to_numpy()
    rows = []
    for i, m in enumerate(matches):
        others = [j for j in dict.fromkeys(np.asarray(m, dtype=np.int64).tolist()) if j != i]
        rows.append(" ".join(ids[[i] + others[: MAX_MATCHES - 1]]))
    return pd.DataFrame({"posting_id": ids, "matches": rows})


def validate_submission(sub: pd.DataFrame, test: pd.DataFrame) -> None:
    """Raise :class:`SubmissionError` unless every test listing appears exactly once with itself among ≤50 matches."""
    if test.empty:
        raise SubmissionError("no test listings to submit: DATA_DIR has no test.csv; put the competition's test.csv "
                              "beside train.csv")
    if list(sub.columns) != ["posting_id", "matches"]:
        raise SubmissionError(f"columns must be ['posting_id', 'matches'], got {list(sub.columns)}")
    spaced = [pid for pid in test["posting_id"] if any(c.isspace() for c in str(pid))]
    if spaced:
        raise SubmissionError(f"{len(spaced)} posting ids hold a space, e.g. {spaced[0]!r}: matches are separated "
                              "by spaces, so remove the spaces from those ids in test.csv")
    empty = sub["posting_id"][sub["matches"].map(lambda m: not isinstance(m, str) or not m.split())]
    if len(empty):
        raise SubmissionError(f"{len(empty)} listings have an empty matches cell, e.g. {empty.iloc[0]!r}: every "
                              "listing matches at least itself; write its own posting_id there")
    dup = sub["posting_id"][sub["posting_id"].duplicated()]
    if len(dup):
        raise SubmissionError(f"{len(dup)} posting ids appear more than once, e.g. {dup.iloc[0]!r}")
    expected = set(test["posting_id"])
    missing = expected - set(sub["posting_id"])
    unknown = set(sub["posting_id"]) - expected
    if missing or unknown:
        raise SubmissionError(f"{len(missing)} test listings missing (e.g. {sorted(missing)[:3]}), "
                              f"{len(unknown)} unknown ids (e.g. {sorted(unknown)[:3]})")
    lists = sub.set_index("posting_id")["matches"].str.split()
    no_self = [pid for pid, m in lists.items() if pid not in m]
    if no_self:
        raise SubmissionError(f"{len(no_self)} listings lack themselves in matches, e.g. {no_self[0]!r}")
    too_many = lists.map(len) > MAX_MATCHES
    if too_many.any():
        raise SubmissionError(f"{int(too_many.sum())} listings have more than {MAX_MATCHES} matches")
    foreign = {m for ms in lists for m in ms} - expected
    if foreign:
        raise SubmissionError(f"matches name {len(foreign)} ids that are not test listings, e.g. {sorted(foreign)[:3]}")


def write_submission(sub: pd.DataFrame, test: pd.DataFrame, path: str | Path) -> Path:
    """Validate, then write the csv Kaggle expects."""
    validate_submission(sub, test)
    path = Path(path)
    sub.to_csv(path, index=False)
    return path


def score_submission(sub: pd.DataFrame, solution: pd.DataFrame) -> Scores:
    """Mean F1 of a submission against a ``posting_id,matches`` solution (the generated sample ships one).

    Both must name the same listings: a solution row without its submission row would score 0, and a
    submission row without its solution row would not count, either way a wrong number."""
    differences = id_differences(sub["posting_id"], solution["posting_id"], "the solution")
    if differences:
        raise SubmissionError(f"the submission and the solution list different listings: {differences}; score a "
                              "submission of the solution's own test.csv (samesame.data.listings.read_solution "
                              "checks the one beside it)")
    predicted = parse_matches_column(sub.set_index("posting_id")["matches"])
    truth = parse_matches_column(solution.set_index("posting_id")["matches"])
    return score_id_sets(predicted, truth)
