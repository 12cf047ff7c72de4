"""Shared fixtures: a tiny hand-made Kaggle-layout folder, and the real dev data when it is beside the checkout."""

import os
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DEV = REPO.parent / "shared" / "data" / "shopee-dev"


@pytest.fixture
def shopee_dev() -> Path:
    """The real dev table (Kaggle competition data); tests using it skip on machines without it."""
    if not (SHARED_DEV / "train.csv").exists():
        pytest.skip(f"real dev data not found at {SHARED_DEV}")
    return SHARED_DEV


def write_listings(folder: Path, rows: list[dict], name: str = "train.csv", images: dict | None = None) -> Path:
    """Write a Kaggle-style csv (and optional images {file name: PIL image}) into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / name, index=False)
    if images:
        img_dir = folder / ("train_images" if name == "train.csv" else "test_images")
        img_dir.mkdir(exist_ok=True)
        for fname, img in images.items():
            img.save(img_dir / fname)
    return folder / name


@pytest.fixture
def tiny_kaggle(tmp_path) -> Path:
    """3 groups / 7 train listings (2 with images) and 2 test listings, in the Kaggle layout."""
    rng = np.random.default_rng(0)
    rows = [
        {"posting_id": f"train_{i}", "image": f"img{i}.jpg", "image_phash": f"{i:016x}",
         "title": t, "label_group": g}
        for i, (t, g) in enumerate([("Kopi Bubuk 200gr", 1), ("KOPI bubuk 200 gr murah", 1), ("Teh Hijau 50gr", 2),
                                    ("teh hijau 50 gr COD", 2), ("teh hijau celup", 2), ("Sepatu Putih", 3),
                                    (r"\xe2\x9d\xa4 Sepatu Putih Wanita", 3)])
    ]
    images = {f"img{i}.jpg": Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for i in (0, 1)}
    write_listings(tmp_path, rows, images=images)
    test_rows = [{k: v for k, v in r.items() if k != "label_group"} | {"posting_id": f"test_{i}"} for i, r in enumerate(rows[:2])]
    write_listings(tmp_path, test_rows, name="test.csv")
    return tmp_path
