"""Writing the Kaggle layout: plan, render every image (in a process pool) and write the csv files last."""

from __future__ import annotations

import json
import multiprocessing
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from samesame.core.files import write_text
from samesame.data.sample.catalogue import DEFAULT_EDITS, MASTER_OVERSCAN, EditStrengths
from samesame.data.sample.plan import group_size_distribution, plan_sample
from samesame.data.sample.render import render_group


MARKER = "samesame-sample.json"
"""Written first into every generated folder, with the generation's arguments: the proof that the folder is ours."""
KAGGLE_TRAIN, KAGGLE_TEST = 34_250, 70_000
"""Listings of the competition's train.csv and of its hidden test.csv (scale 1 of a rehearsal)."""
REHEARSAL_IMAGE_SIZE = 640
"""Typical photo side of a rehearsal: Shopee's photos are mostly 640 px or more (sides drawn: 512, 640, 800, 960)."""


def rehearsal_arguments(scale: float) -> dict:
    """:func:`generate_sample` arguments for a competition folder at ``scale`` times Kaggle's size: about
    34,250 x scale train listings (11,000 x scale groups) and 70,000 x scale test listings of other groups."""
    if not 0 < scale <= 4:
        raise ValueError(f"scale={scale}: use a size between 0 and 4 times Kaggle's (1 is Kaggle's, 1/8 an eighth)")
    sizes, p = group_size_distribution()
    mean_group = float((sizes * p).sum())
    return {"n_groups": max(2, round((KAGGLE_TRAIN + KAGGLE_TEST) * scale / mean_group)),
            "test_fraction": KAGGLE_TEST / (KAGGLE_TRAIN + KAGGLE_TEST), "image_size": REHEARSAL_IMAGE_SIZE}


def _claim(out: Path, arguments: dict) -> None:
    """Make ``out`` this generation's own folder, or refuse it before writing anything: a folder is written into
    only when it is new, empty, or a sample generated with the same arguments (its marker says so), so a user's
    data folder is never overwritten and a stopped generation resumes."""
    marker = out / MARKER
    if marker.is_file():
        try:
            theirs = json.loads(marker.read_text())
        except (ValueError, UnicodeDecodeError):
            theirs = "unreadable"
        if theirs != arguments:
            differ = sorted(k for k in arguments if not isinstance(theirs, dict) or theirs.get(k) != arguments[k])
            raise FileExistsError(f"{out} holds a sample generated with other arguments ({', '.join(differ)} "
                                  f"differ); generate into a new folder, or delete {out} first")
        return
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a folder: generate the sample into a new folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if entries:
        raise FileExistsError(f"{out} already holds {len(entries)} entries (e.g. {entries[0]}) and is not a sample "
                              f"this project generated (it has no {MARKER}); nothing was written: generate into a new "
                              "or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    write_text(marker, json.dumps(arguments, indent=2))


def write_split(out: Path, rows: pd.DataFrame, split: str) -> None:
    """``{split}.csv`` in Kaggle's column order, rows sorted by image name as Kaggle's are."""
    columns = ["posting_id", "image", "image_phash", "title"] + (["label_group"] if split == "train" else [])
    rows = rows.sort_values("image", kind="stable")
    tables = {f"{split}.csv": rows[columns]}
    if split == "test":
        ids = rows["posting_id"]
        truth = rows.groupby("label_group", sort=False)["posting_id"].agg(" ".join)
        tables["sample_submission.csv"] = pd.DataFrame({"posting_id": ids, "matches": ids})
        tables["test_solution.csv"] = pd.DataFrame({"posting_id": ids, "matches": rows["label_group"].map(truth)})
    for name, table in tables.items():
        write_text(out / name, table.to_csv(index=False, lineterminator="\n"))


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
    last, so a folder with train.csv holds a complete sample; a generation stopped midway resumes,
    keeping the photos it wrote. Writes only into a new or empty folder, or one it generated itself
    with the same arguments (:data:`MARKER`); any other folder is refused before anything is written.
    """
    if n_groups < 2:
        raise ValueError(f"n_groups={n_groups}: need at least 2 groups (one for train, one for test)")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction}: must be strictly between 0 and 1")
    if image_size < 32:
        raise ValueError(f"image_size={image_size}: use at least 32 pixels")
    start = time.perf_counter()
    out = Path(out_dir)
    arguments = json.loads(json.dumps({"generator": "samesame.data.sample", "n_groups": n_groups,
                                       "test_fraction": test_fraction, "image_size": image_size, "seed": seed,
                                       "edits": asdict(edits)}))
    _claim(out, arguments)
    products, groups = plan_sample(n_groups, test_fraction, image_size, seed, edits)
    listings = [lst for group in groups for lst in group]
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
