"""Writing the Kaggle layout: plan, render every image (in a process pool) and write the csv files last."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from samesame.data.sample.catalogue import DEFAULT_EDITS, MASTER_OVERSCAN, EditStrengths
from samesame.data.sample.plan import plan_sample
from samesame.data.sample.render import render_group


def _check_out_dir(out: Path, names: set[str]) -> None:
    """Refuse to mix this sample's images with another dataset's in the same folders."""
    for sub in ("train_images", "test_images"):
        folder = out / sub
        if folder.is_dir():
            strangers = [p.name for p in folder.iterdir() if p.name not in names]
            if strangers:
                raise FileExistsError(
                    f"{folder} already holds {len(strangers)} files that are not part of this sample "
                    f"(e.g. {strangers[0]}); generate into an empty directory or delete that folder.")


def write_split(out: Path, rows: pd.DataFrame, split: str) -> None:
    """``{split}.csv`` in Kaggle's column order, rows sorted by image name as Kaggle's are."""
    columns = ["posting_id", "image", "image_phash", "title"] + (["label_group"] if split == "train" else [])
    rows = rows.sort_values("image", kind="stable")
    rows[columns].to_csv(out / f"{split}.csv", index=False, lineterminator="\n")
    if split == "test":
        ids = rows["posting_id"]
        pd.DataFrame({"posting_id": ids, "matches": ids}).to_csv(
            out / "sample_submission.csv", index=False, lineterminator="\n")
        truth = rows.groupby("label_group", sort=False)["posting_id"].agg(" ".join)
        pd.DataFrame({"posting_id": ids, "matches": rows["label_group"].map(truth)}).to_csv(
            out / "test_solution.csv", index=False, lineterminator="\n")


def _render_all(tasks: list, n_images: int, workers: int, progress: bool) -> list[list[str]]:
    """Run :func:`render_group` over all products, in a pool of ``workers`` processes if > 1."""
    bar = tqdm(total=n_images, desc="rendering sample images", unit="img", disable=not progress)
    results = []
    if workers > 1:
        with multiprocessing.get_context().Pool(workers) as pool:
            for hashes in pool.imap(render_group, tasks, chunksize=4):
                results.append(hashes)
                bar.update(len(hashes))
    else:
        for task in tasks:
            results.append(render_group(task))
            bar.update(len(results[-1]))
    bar.close()
    return results


def generate_sample(out_dir, *, n_groups: int = 450, test_fraction: float = 0.3, image_size: int = 256,
                    seed: int = 0, progress: bool = True, workers: int = 2,
                    edits: EditStrengths = DEFAULT_EDITS) -> dict:
    """Write a synthetic Shopee-like dataset into ``out_dir`` in Kaggle's layout; return a summary.

    Files: train.csv, train_images/, test.csv, test_images/, sample_submission.csv (self matches)
    and test_solution.csv (the true groups of test, to score a submission). Train and test have
    disjoint groups. Same arguments give byte-identical CSVs and images. The CSVs are written
    last, so a folder with train.csv holds a complete sample.
    """
    if n_groups < 2:
        raise ValueError(f"n_groups={n_groups}: need at least 2 groups (one for train, one for test)")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction}: must be strictly between 0 and 1")
    if image_size < 32:
        raise ValueError(f"image_size={image_size}: use at least 32 pixels")
    start = time.perf_counter()
    out = Path(out_dir)
    products, groups = plan_sample(n_groups, test_fraction, image_size, seed, edits)
    listings = [lst for group in groups for lst in group]
    _check_out_dir(out, {lst.image for lst in listings})
    for split in ("train", "test"):
        (out / f"{split}_images").mkdir(parents=True, exist_ok=True)
    master_side = round(image_size * MASTER_OVERSCAN)
    tasks = [(p.look, [(lst.edit, str(out / f"{lst.split}_images" / lst.image)) for lst in group], master_side)
             for p, group in zip(products, groups)]
    hashes = [h for group_hashes in _render_all(tasks, len(listings), workers, progress) for h in group_hashes]
    table = pd.DataFrame({
        "posting_id": [lst.posting_id for lst in listings], "image": [lst.image for lst in listings],
        "image_phash": hashes, "title": [lst.title for lst in listings],
        "label_group": [lst.label_group for lst in listings], "split": [lst.split for lst in listings],
    })
    for split in ("train", "test"):
        write_split(out, table[table["split"] == split], split)
    counts = table.groupby("split")["label_group"].agg(["size", "nunique"])
    return {
        "n_train": int(counts.loc["train", "size"]), "n_test": int(counts.loc["test", "size"]),
        "n_groups_train": int(counts.loc["train", "nunique"]), "n_groups_test": int(counts.loc["test", "nunique"]),
        "seconds": round(time.perf_counter() - start, 2),
    }
