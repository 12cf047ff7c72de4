"""The numbers 01_eda reports about a listings table: counts, group sizes, image shapes, titles."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from samesame.data.listings import group_sizes


def image_shapes(paths: pd.Series, progress: bool = True) -> pd.DataFrame:
    """Width and height of each image from its header alone (no decode); NaN where unreadable."""
    shapes = []
    for path in tqdm(paths, desc="image headers", disable=not progress):
        try:
            with Image.open(path) as img:
                shapes.append(img.size)
        except (OSError, ValueError, TypeError, Image.DecompressionBombError):
            shapes.append((np.nan, np.nan))
    return pd.DataFrame(shapes, columns=["width", "height"], index=paths.index, dtype=float)


def summarize(df: pd.DataFrame, shapes: pd.DataFrame | None = None) -> dict:
    """Headline EDA numbers: listings, groups, groups of each size, share of square images."""
    sizes = group_sizes(df)
    summary = {
        "n_postings": int(len(df)),
        "n_groups": int(df["label_group"].nunique()),
        "groups_of_size": {str(k): int(v) for k, v in sizes.items()},
        "largest_group": int(sizes.index.max()),
        "n_images_on_disk": int(df["image_path"].notna().sum()),
        "median_title_words": float(df["title"].str.split().map(len).median()),
    }
    known = shapes.dropna() if shapes is not None else pd.DataFrame()
    summary["share_square_images"] = float((known["width"] == known["height"]).mean()) if len(known) else None
    return summary


def size_table(df: pd.DataFrame) -> pd.DataFrame:
    """The seed's table: products in the class -> number of classes (and listings, share)."""
    sizes = group_sizes(df).to_frame()
    sizes["n_listings"] = sizes.index * sizes["n_groups"]
    sizes["share_of_groups"] = (sizes["n_groups"] / sizes["n_groups"].sum()).round(4)
    return sizes


def gallery_groups(df: pd.DataFrame, n: int) -> list:
    """Label groups worth showing: most listings with an image on disk first, then the largest."""
    per_group = df.assign(has_image=df["image_path"].notna()).groupby("label_group").agg(
        with_images=("has_image", "sum"), size=("posting_id", "size"))
    return list(per_group.sort_values(["with_images", "size"], ascending=False).index[:n])
