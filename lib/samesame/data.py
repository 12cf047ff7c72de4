"""The Kaggle data layout: read, validate, decode titles, split by group, resolve image paths.

Layout (as ``kaggle competitions download -c shopee-product-matching`` unpacks it)::

    train.csv   posting_id, image, image_phash, title, label_group
    test.csv    posting_id, image, image_phash, title
    train_images/  test_images/  sample_submission.csv
    test_solution.csv   (only in the generated sample: posting_id, matches)

Image folders are optional: a listing whose image is absent keeps its row and is
matched by its title and the csv's ``image_phash``.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

TEST_COLUMNS = ["posting_id", "image", "image_phash", "title"]
TRAIN_COLUMNS = TEST_COLUMNS + ["label_group"]
SOLUTION_FILE = "test_solution.csv"

_ESCAPES = re.compile(r"(?:\\x[0-9a-fA-F]{2})+")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_PARSER_LINE = re.compile(r"(?:in line (\d+)|starting at row (\d+))")


class DataError(ValueError):
    """The data on disk does not have the Kaggle layout; the message says where and what to do."""


@dataclass
class Dataset:
    """One Kaggle-layout folder: labelled train listings, unlabelled test listings, optional solution."""

    data_dir: Path
    train: pd.DataFrame
    test: pd.DataFrame
    solution: pd.DataFrame | None

    def image_counts(self) -> dict[str, int]:
        """How many listings of each split have an image file on disk."""
        return {name: int(df["image_path"].notna().sum()) for name, df in (("train", self.train), ("test", self.test))}


def decode_title(title: str) -> str:
    r"""Turn Kaggle's literal ``\xNN`` byte escapes (UTF-8 emoji, quotes) back into text."""

    def _decode(match: re.Match) -> str:
        raw = codecs.escape_decode(match.group(0).encode("ascii"))[0]
        return raw.decode("utf-8", errors="replace")

    return _ESCAPES.sub(_decode, title)


def read_listings(csv_path: str | Path, *, labelled: bool, image_dir: str | Path | None = None) -> pd.DataFrame:
    """Read and validate one listings csv; titles decoded, ``image_path`` resolved (None when absent).

    Raises :class:`DataError` naming the file, the rows and the fix for: a missing,
    empty or malformed file (unterminated quote, rows longer than the header, not
    text at all), missing or unexpected columns, duplicate posting ids, phashes that
    are not 16 hex digits, non-integer label groups.
    """
    csv_path = Path(csv_path)
    expected = TRAIN_COLUMNS if labelled else TEST_COLUMNS
    if not csv_path.is_file():
        raise DataError(f"{csv_path} not found: point DATA_DIR at a Kaggle-layout folder (see README, 'Data').")
    df = _read_csv(csv_path)
    _check_columns(df, expected, csv_path)
    if df.empty:
        raise DataError(f"{csv_path} has a header but no rows: there is nothing to match.")
    _check_unique_ids(df, csv_path)
    df["image_phash"] = df["image_phash"].str.strip().str.lower()
    _check_rows(df, ~df["image_phash"].str.match(_HEX16), csv_path,
                "image_phash is not 16 hex digits", "recompute them as str(imagehash.phash(image))")
    if labelled:
        groups = pd.to_numeric(df["label_group"], errors="coerce")
        _check_rows(df, groups.isna() | (groups % 1 != 0), csv_path,
                    "label_group is not an integer", "every train row needs its integer label_group")
        df["label_group"] = groups.astype(np.int64)
    df["title"] = df["title"].map(decode_title)
    df["image_path"] = _resolve_images(df["image"], image_dir)
    return df[expected + ["image_path"]]


def _read_csv(path: Path) -> pd.DataFrame:
    """pandas' csv parser, its errors turned into a DataError naming the file, the line and the fix."""
    fix = "re-download it (make data) or regenerate the sample (make sample)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)   # longer rows would silently lose fields
            return pd.read_csv(path, dtype={c: str for c in TEST_COLUMNS}, keep_default_na=False, index_col=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: {fix}.") from None
    except pd.errors.ParserWarning:
        raise DataError(f"{path}: the data rows have more fields than the header (line 1): a comma inside an "
                        f"unquoted title, or the wrong file; quote such titles or {fix}.") from None
    except pd.errors.ParserError as err:
        found = _PARSER_LINE.search(str(err))
        where = ("line ?" if not found else f"line {found.group(1)}" if found.group(1)
                 else f"line {int(found.group(2)) + 1}")
        detail = str(err).split("C error: ")[-1].strip()
        if "EOF inside string" in str(err):
            problem, repair = "an unterminated quote starts", 'close the quote (a title with an unmatched ")'
        else:
            problem, repair = "the fields do not match the header", "quote the title that holds a comma"
        raise DataError(f"{path}: not a well-formed csv, {problem} at {where} ({detail}). Fix that line: {repair}; "
                        f"if the file is not the competition's csv, {fix}.") from None
    except UnicodeDecodeError as err:
        line = path.read_bytes()[:err.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line} is not UTF-8 text (byte {err.start}), so this is not a csv (a binary "
                        f"or compressed file renamed .csv?). Unzip the download first, or {fix}.") from None


def _check_columns(df: pd.DataFrame, expected: list[str], path: Path) -> None:
    missing = [c for c in expected if c not in df.columns]
    extra = [c for c in df.columns if c not in expected]
    if missing or extra:
        raise DataError(
            f"{path}: columns {list(df.columns)} do not match the Kaggle layout {expected}"
            + (f"; missing {missing}" if missing else "") + (f"; unexpected {extra}" if extra else "")
            + ". Use the competition's csv as downloaded (train.csv has label_group, test.csv has not)."
        )


def _check_unique_ids(df: pd.DataFrame, path: Path) -> None:
    dup = df["posting_id"].duplicated(keep=False)
    _check_rows(df, dup, path, "duplicate posting_id", "each listing must appear once; remove the duplicates")


def _check_rows(df: pd.DataFrame, bad: pd.Series, path: Path, what: str, fix: str) -> None:
    """Raise naming up to five offending csv lines (header = line 1)."""
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        shown = ", ".join(f"line {r + 2} ({df['posting_id'].iloc[r]!r})" for r in rows[:5])
        raise DataError(f"{path}: {len(rows)} row(s) with {what}: {shown}{' ...' if len(rows) > 5 else ''}; {fix}.")


def _resolve_images(names: pd.Series, image_dir: str | Path | None) -> pd.Series:
    """Absolute path of each listing's image file, None where the folder or the file is absent."""
    if image_dir is None or not Path(image_dir).is_dir():
        return pd.Series([None] * len(names), index=names.index, dtype=object)
    image_dir = Path(image_dir).resolve()
    present = {p.name for p in image_dir.iterdir()}
    return pd.Series([str(image_dir / n) if n in present else None for n in names], index=names.index, dtype=object)


def load_dataset(data_dir: str | Path) -> Dataset:
    """Load a Kaggle-layout folder (train.csv required; test.csv and images optional)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"DATA_DIR {data_dir} does not exist: run `make sample` or `make data`, or pass DATA_DIR=<folder>.")
    train = read_listings(data_dir / "train.csv", labelled=True, image_dir=data_dir / "train_images")
    test_csv = data_dir / "test.csv"
    test = (read_listings(test_csv, labelled=False, image_dir=data_dir / "test_images")
            if test_csv.exists() else train.iloc[:0].drop(columns="label_group"))
    solution_csv = data_dir / SOLUTION_FILE
    solution = pd.read_csv(solution_csv, dtype=str) if solution_csv.exists() else None
    return Dataset(data_dir, train, test, solution)


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


def split_by_group(df: pd.DataFrame, test_fraction: float = 0.3, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
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


def group_sizes(df: pd.DataFrame) -> pd.Series:
    """Number of groups of each size: index = listings in the group, value = number of groups."""
    return df.groupby("label_group").size().value_counts().sort_index().rename_axis("group_size").rename("n_groups")
