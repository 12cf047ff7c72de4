"""64-bit perceptual hash (the seed's baseline) and its Hamming-distance codes.

The hash comes from the image with ``imagehash.phash`` when the image can be read,
else from the csv's ``image_phash`` column (Kaggle computed it the same way), so a
run without image files still has this signal for every listing.
"""

from __future__ import annotations

from typing import Sequence

import imagehash
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from samesame.image.images import open_rgb


def phash_codes(hex_strings: Sequence[str]) -> np.ndarray:
    """16-hex-digit hashes as packed bits, uint8 (n, 8), for ``knn(codes, metric="hamming")``."""
    codes = []
    for row, h in enumerate(hex_strings):
        try:
            code = bytes.fromhex(h)
        except (ValueError, TypeError):
            code = b""
        if len(code) != 8:
            raise ValueError(f"image_phash {h!r} (row {row}) is not 16 hex digits; recompute it with "
                             "str(imagehash.phash(image))")
        codes.append(code)
    return np.frombuffer(b"".join(codes), dtype=np.uint8).reshape(-1, 8)


def phash_column(values: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """A listings column of phashes as :func:`phash_codes` and which rows have one: a missing value (NaN, None or
    "", as plain ``pd.read_csv`` reads an empty cell) gives no phash, like a missing image, instead of a crash."""
    present = np.array([isinstance(v, str) and bool(v.strip()) for v in values], dtype=bool)
    return phash_codes([v.strip() if p else "0" * 16 for v, p in zip(values, present)]), present


def phash_similarity(bits):
    """Hamming distance (of 64 bits) as the "larger = closer" similarity the fusion reads: 1 - bits/32
    (identical 1, unrelated hashes about 0)."""
    return 1.0 - bits / 32.0


def hamming(hex_a: str, hex_b: str) -> int:
    """Number of differing bits between two 16-hex-digit hashes."""
    return int(np.unpackbits(np.bitwise_xor(*phash_codes([hex_a, hex_b]))).sum())


def listing_phashes(df: pd.DataFrame, progress: bool = True) -> pd.DataFrame:
    """Each listing's phash, computed from its image when readable, else the csv's.

    Returns columns ``phash`` (16 hex digits) and ``source`` ("image" or "csv")
    aligned with ``df``; the counts of each source say how much of a run saw images.
    """
    hashes, sources = [], []
    for path, csv_hash in tqdm(zip(df["image_path"], df["image_phash"]), total=len(df),
                               desc="phash", disable=not progress):
        image, status = open_rgb(path) if isinstance(path, str) else (None, "missing")
        if image is None:
            hashes.append(csv_hash)
            sources.append("csv")
        else:
            hashes.append(str(imagehash.phash(image)))
            sources.append("image")
    return pd.DataFrame({"phash": hashes, "source": sources}, index=df.index)


def example_pairs(labels: Sequence, hex_strings: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """Two same-product pairs to show: the closest (phash works) and the farthest (phash fails).

    Returns {"similar": (i, j, bits), "dissimilar": (i, j, bits)} as row positions.
    """
    labels = np.asarray(labels)
    pairs = []
    for group in pd.unique(labels):
        rows = np.flatnonzero(labels == group)
        if len(rows) >= 2:
            i, j = int(rows[0]), int(rows[1])
            pairs.append((i, j, hamming(hex_strings[i], hex_strings[j])))
    if not pairs:
        raise ValueError("no group has two listings to compare")
    pairs.sort(key=lambda p: p[2])
    return {"similar": pairs[0], "dissimilar": pairs[-1]}
