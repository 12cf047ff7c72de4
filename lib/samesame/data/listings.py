"""The Kaggle data layout: read, validate, decode titles, resolve image paths.

Layout (as ``kaggle competitions download -c shopee-product-matching`` unpacks it)::

    train.csv   posting_id, image, image_phash, title, label_group
    test.csv    posting_id, image, image_phash, title
    train_images/  test_images/  sample_submission.csv
    test_solution.csv   (only in the generated sample: posting_id, matches; checked against test.csv)

Image folders are optional: a listing whose image is absent keeps its row and is
matched by its title and the csv's ``image_phash``.
"""

from __future__ import annotations

import codecs
import csv
import decimal
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

TEST_COLUMNS = ["posting_id", "image", "image_phash", "title"]
TRAIN_COLUMNS = TEST_COLUMNS + ["label_group"]
SOLUTION_FILE = "test_solution.csv"
SOLUTION_COLUMNS = ["posting_id", "matches"]

_ESCAPES = re.compile(r"(?:\\x[0-9a-fA-F]{2})+")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_PARSER_LINE = re.compile(r"(?:in line (\d+)|starting at row (\d+))")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$", re.ASCII)
INT64 = (-2**63, 2**63 - 1)
REFETCH = "re-download it (make data) or regenerate the sample (make sample)"
MAX_FIELD_CHARS = 131_072
"""The longest field the csv module reads (its default ``field_size_limit``); a Shopee title holds under 300."""
MIN_PAIRED_GROUPS = 2
"""Label groups of two or more listings train.csv needs: a matcher learns what a match looks like on some of them
and checks it on others (all-unique groups left nothing to learn and still read as a 0.99 estimate)."""


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

    Raises :class:`DataError` naming the file, the rows and the fix for: a missing or
    empty file, a folder in its place, a malformed file (unterminated quote, rows longer or shorter than the
    header, a column named twice, a field over :data:`MAX_FIELD_CHARS`, not UTF-8 text), missing or unexpected
    columns, empty or duplicate posting ids, phashes that are not 16 hex digits, label groups that are not
    integers in ASCII digits within int64.
    """
    csv_path = Path(csv_path)
    expected = TRAIN_COLUMNS if labelled else TEST_COLUMNS
    df = _read_csv(_existing_file(csv_path))
    _check_columns(df, expected, csv_path)
    if df.empty:
        raise DataError(f"{csv_path} has a header but no rows: there is nothing to match.")
    _check_ids(df, csv_path)
    _check_rows(df, df["posting_id"].str.contains(r"\s"), csv_path, "a space in posting_id",
                "a submission separates ids by spaces, so remove them from those ids (Kaggle's have none)")
    df["image_phash"] = df["image_phash"].str.strip().str.lower()
    _check_rows(df, ~df["image_phash"].str.match(_HEX16), csv_path,
                "image_phash is not 16 hex digits", "recompute them as str(imagehash.phash(image))")
    if labelled:
        df["label_group"] = _label_groups(df, csv_path)
        _check_paired_groups(df["label_group"], csv_path)
    df["title"] = df["title"].map(decode_title)
    df["image_path"] = _resolve_images(df["image"], image_dir)
    return df[expected + ["image_path"]]


def read_solution(csv_path: str | Path, test: pd.DataFrame) -> pd.DataFrame:
    """The true ``posting_id,matches`` of ``test``'s listings, checked to be of that very test.csv.

    A solution of another test.csv scores a submission silently wrong (10 of its rows missing read 0.963,
    5 extra 0.729, for a true 0.921), so its ids must be test.csv's, each once, and its matches name only them.
    """
    csv_path = Path(csv_path)
    df = _read_csv(_existing_file(csv_path))
    _check_columns(df, SOLUTION_COLUMNS, csv_path,
                   "regenerate the sample (make sample), which writes it beside its test.csv")
    _check_ids(df, csv_path)
    fix = ("it belongs to another test.csv: regenerate both with make sample, or delete the solution file to "
           "submit unscored")
    differences = id_differences(df["posting_id"], test["posting_id"], "test.csv")
    if differences:
        raise DataError(f"{csv_path}: its posting ids are not test.csv's: {differences}; {fix}.")
    named = {pid for cell in df["matches"] for pid in cell.split()}
    foreign = sorted(named - set(test["posting_id"]))
    if foreign:
        raise DataError(f"{csv_path}: matches name {len(foreign)} id(s) not in test.csv, e.g. {foreign[:3]}; {fix}.")
    return df


def id_differences(ids: pd.Series, expected: pd.Series, source: str) -> str:
    """What sets ``ids`` apart from the ids of ``source`` ('' when they are the same set): how many of
    ``source``'s are missing and how many are extra, with examples."""
    missing, extra = sorted(set(expected) - set(ids)), sorted(set(ids) - set(expected))
    parts = [f"{len(missing)} listing(s) of {source} missing (e.g. {missing[:3]})" if missing else "",
             f"{len(extra)} id(s) not in {source} (e.g. {extra[:3]})" if extra else ""]
    return ", ".join(part for part in parts if part)


def _existing_file(path: Path) -> Path:
    """``path``, or a DataError saying it is absent or a folder."""
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a csv file: put the csv itself there (unzip the download "
                        "so that the file, not a folder of that name, sits in DATA_DIR).")
    if not path.is_file():
        raise DataError(f"{path} not found: point DATA_DIR at a Kaggle-layout folder (see README, 'Data').")
    return path


def _label_groups(df: pd.DataFrame, path: Path) -> pd.Series:
    """label_group as int64, parsed exactly from its text: ASCII digits, or an exact decimal such as "7.0".

    Never through float: 2**53 and 2**53 + 1 would become one group, and every value beyond
    int64 the same -2**63; groups merged that way are wrong matches no later step can notice.
    Other scripts' digits ("３５１", "٣٥１") are refused, not read as 351: an edited file would join group 351.
    """
    _check_rows(df, ~df["label_group"].map(str.isascii), path, "label_group not in ASCII digits",
                "write those label groups with the digits 0-9 (an editor or keyboard locale converted them)")
    exact = {text: _integer(text) for text in df["label_group"].unique()}
    values = df["label_group"].map(exact)
    _check_rows(df, values.isna(), path, "label_group is not an integer",
                "every train row needs its integer label_group")
    _check_rows(df, ~values.map(lambda v: INT64[0] <= v <= INT64[1]), path,
                "label_group outside the 64-bit integer range [-2**63, 2**63 - 1]",
                "renumber the groups (one id per product, below 2**63); they are ids, only equality matters")
    return values.map(int).astype(np.int64)


def _check_paired_groups(groups: pd.Series, path: Path) -> None:
    """At least :data:`MIN_PAIRED_GROUPS` label groups hold two or more listings."""
    sizes = groups.value_counts()
    paired = int((sizes >= 2).sum())
    if paired < MIN_PAIRED_GROUPS:
        raise DataError(f"{path}: {paired} label group(s) of two or more listings (of {len(sizes)} groups in "
                        f"{len(groups)} rows), at least {MIN_PAIRED_GROUPS} needed to learn and check what a match "
                        "is: give the listings of one product the same label_group, or use the competition's "
                        "train.csv.")


def _integer(text: str) -> decimal.Decimal | None:
    """The integer ``text`` states exactly ("7", "-7", "7.0", "7e3"), as a Decimal; None when it is no number or
    not a whole one. A Decimal, not an int, so that "1e999999999" costs nothing before its range is checked."""
    if not _NUMBER.match(text.strip()):
        return None
    value = decimal.Decimal(text.strip())
    return value if value == value.to_integral_value() else None


def _read_csv(path: Path) -> pd.DataFrame:
    """pandas' csv parser, its errors turned into a DataError naming the file, the line and the fix."""
    _check_header(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)   # longer rows would silently lose fields
            df = pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: {REFETCH}.") from None
    except pd.errors.ParserWarning:
        raise DataError(f"{path}: the data rows have more fields than the header (line 1): a comma inside an "
                        f"unquoted title, or the wrong file; quote such titles or {REFETCH}.") from None
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
                        f"if the file is not the competition's csv, {REFETCH}.") from None
    except UnicodeDecodeError:
        raise DataError(_not_utf8(path)) from None
    _check_field_lengths(df, path)
    _check_field_counts(path, len(df.columns))
    return df


def _check_header(path: Path) -> None:
    """Refuse a header separated by ';', tabs or '|' (a spreadsheet's export): pandas would read it as one column,
    or blame a comma inside a title; and one that names a column twice: pandas would rename the second
    ("title.1") and the rows would read as short of a field."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            header = f.readline()
    except UnicodeDecodeError:
        return                                         # not text: the parser's error says where
    other = next((d for d in (";", "\t", "|") if d in header), None)
    if other and "," not in header:
        raise DataError(f"{path}: the header is separated by {other!r}, not commas: save the file as a "
                        f"comma-separated csv (the competition's format), or {REFETCH}.")
    names = next(csv.reader([header]), [])
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise DataError(f"{path}: the header (line 1) names column(s) {twice} more than once: keep one column of "
                        f"each name (and its field on every row), or {REFETCH}.")


def _check_field_lengths(df: pd.DataFrame, path: Path) -> None:
    """Refuse a field over :data:`MAX_FIELD_CHARS` by its column and line: it is no Kaggle value (a description
    pasted into a title), and the csv module's field limit would otherwise blame the file itself."""
    for column in df.columns:
        lengths = df[column].str.len().to_numpy()
        if len(lengths) and lengths.max() > MAX_FIELD_CHARS:
            row = int(lengths.argmax())
            raise DataError(f"{path}: the {column} at {_row_name(df, row)} is {lengths[row]:,} characters, over the "
                            f"{MAX_FIELD_CHARS:,} a field may hold; shorten or clean that {column} on that row (a "
                            "text pasted into it, or a quote left open that swallowed the lines after it).")


def _not_utf8(path: Path) -> str:
    """Where the first non-UTF-8 byte is (pandas reports an offset within the chunk it was decoding)."""
    data = path.read_bytes()
    where = "it is not UTF-8 text"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line, column = data.count(b"\n", 0, err.start) + 1, err.start - data.rfind(b"\n", 0, err.start)
        where = f"line {line} is not UTF-8 text (byte 0x{data[err.start]:02x}, byte {column} of that line)"
    return (f"{path}: {where}. Re-save it as UTF-8 if an editor wrote it as Latin-1 or cp1252. Unzip the "
            f"download first if it is a compressed file renamed .csv, or {REFETCH}.")


def _check_field_counts(path: Path, width: int) -> None:
    """Refuse records with fewer fields than the header, naming their lines.

    pandas fills the missing fields with "" (the dtype is str), which reads like a legal empty
    title: a line cut short would silently become a listing with no title. An empty last field
    (``a,b,c,``) still counts as a field.
    """
    short = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        next(reader)                                   # the header
        start = reader.line_num + 1
        try:
            for record in reader:
                if record and len(record) < width:
                    short.append(f"line {start} ({len(record)} fields)")
                start = reader.line_num + 1
        except csv.Error as err:                       # e.g. a field over csv's size limit: no listing csv
            raise DataError(f"{path}: line {start} is not a csv record ({err}); {REFETCH}.") from None
    if short:
        raise DataError(f"{path}: {len(short)} row(s) with fewer fields than the header's {width}: "
                        f"{', '.join(short[:5])}{' ...' if len(short) > 5 else ''}. A field or its comma was lost "
                        "(an empty title is still written as an empty field: id,image,phash,): restore it on those "
                        f"lines, or {REFETCH}.")


def _check_columns(df: pd.DataFrame, expected: list[str], path: Path,
                   fix: str = "use the competition's csv as downloaded (train.csv has label_group, test.csv has not)"
                   ) -> None:
    missing = [c for c in expected if c not in df.columns]
    extra = [c for c in df.columns if c not in expected]
    if missing or extra:
        raise DataError(
            f"{path}: columns {list(df.columns)} do not match the Kaggle layout {expected}"
            + (f"; missing {missing}" if missing else "") + (f"; unexpected {extra}" if extra else "")
            + f": {fix}."
        )


def _check_ids(df: pd.DataFrame, path: Path) -> None:
    """Every posting_id present and unique: a submission row is keyed by it."""
    _check_rows(df, df["posting_id"].str.strip() == "", path, "an empty posting_id",
                "give each listing its id (Kaggle writes train_<number>); a submission names every listing by it")
    dup = df["posting_id"].duplicated(keep=False)
    _check_rows(df, dup, path, "duplicate posting_id", "each listing must appear once; remove the duplicates")


def _row_name(df: pd.DataFrame, row: int) -> str:
    """A data row as its csv line (header = line 1) and its posting_id."""
    return f"line {row + 2}" + (f" ({df['posting_id'].iloc[row]!r})" if "posting_id" in df.columns else "")


def _check_rows(df: pd.DataFrame, bad: pd.Series, path: Path, what: str, fix: str) -> None:
    """Raise naming up to five offending csv lines (header = line 1)."""
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        shown = ", ".join(_row_name(df, r) for r in rows[:5])
        raise DataError(f"{path}: {len(rows)} row(s) with {what}: {shown}{' ...' if len(rows) > 5 else ''}; {fix}.")


def _resolve_images(names: pd.Series, image_dir: str | Path | None) -> pd.Series:
    """Absolute path of each listing's image file, None where the folder or the file is absent.

    Images unzipped one folder too deep (``train_images/train_images/*.jpg``) are found there, with a warning:
    otherwise none would be found and the image signal would silently drop out.
    """
    if image_dir is None or not Path(image_dir).is_dir():
        return pd.Series([None] * len(names), index=names.index, dtype=object)
    image_dir = Path(image_dir).resolve()
    present = {p.name for p in image_dir.iterdir()}
    nested = image_dir / image_dir.name
    if nested.is_dir() and not present & set(names):
        warnings.warn(f"{image_dir} holds its images one folder deeper, in {nested}: using them; move them up "
                      f"a level (mv {nested}/* {image_dir}/) to silence this", stacklevel=3)
        image_dir, present = nested, {p.name for p in nested.iterdir()}
    return pd.Series([str(image_dir / n) if n in present else None for n in names], index=names.index, dtype=object)


def check_data_dir(data_dir: str | Path) -> Path:
    """``data_dir`` as a Path, or a DataError naming it and the fix unless it is a folder holding train.csv
    (the pipeline checks it before any work starts)."""
    data_dir = Path(data_dir)
    where = "run `make sample` or `make data`, or pass DATA_DIR=<a Kaggle-layout folder>"
    if not data_dir.exists():
        raise DataError(f"DATA_DIR {data_dir} does not exist: {where}.")
    if not data_dir.is_dir():
        raise DataError(f"DATA_DIR {data_dir} is a file, not a folder: {where}.")
    if not (data_dir / "train.csv").is_file():
        raise DataError(f"DATA_DIR {data_dir} has no train.csv: {where}.")
    return data_dir


def load_dataset(data_dir: str | Path) -> Dataset:
    """Load a Kaggle-layout folder (train.csv required; test.csv and images optional: without test.csv the test
    set is empty, with a warning, and only a submission refuses it)."""
    data_dir = check_data_dir(data_dir)
    train = read_listings(data_dir / "train.csv", labelled=True, image_dir=data_dir / "train_images")
    test_csv = data_dir / "test.csv"
    if test_csv.exists():
        test = read_listings(test_csv, labelled=False, image_dir=data_dir / "test_images")
    else:
        warnings.warn(f"{test_csv} not found: the test set is empty (01-06 run on train.csv; a submission needs "
                      "the competition's test.csv there)", stacklevel=2)
        test = train.iloc[:0].drop(columns="label_group")
    solution_csv = data_dir / SOLUTION_FILE
    solution = read_solution(solution_csv, test) if solution_csv.exists() else None
    return Dataset(data_dir, train, test, solution)


def group_sizes(df: pd.DataFrame) -> pd.Series:
    """Number of groups of each size: index = listings in the group, value = number of groups."""
    return df.groupby("label_group").size().value_counts().sort_index().rename_axis("group_size").rename("n_groups")
