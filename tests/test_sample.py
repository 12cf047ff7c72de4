"""Tests for samesame.data.sample: the synthetic Shopee-like sample in Kaggle's layout."""

from __future__ import annotations

import json
import re
from collections import Counter

import imagehash
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from samesame.data.sample import generate_sample, group_size_distribution, plan_sample, sample_group_sizes
from samesame.data.sample.cli import main
from samesame.data.sample.colours import _luma
from samesame.data.sample.plan import _hue_turned
from samesame.data.sample.write import rehearsal_arguments

SMALL = dict(n_groups=30, image_size=96, seed=3, progress=False)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    summary = generate_sample(out, workers=1, **SMALL)
    return out, summary


def _read(out, name):
    return pd.read_csv(out / name, dtype={"image_phash": str})


def test_layout_and_columns_are_kaggles(small):
    out, summary = small
    train, test = _read(out, "train.csv"), _read(out, "test.csv")
    assert list(train.columns) == ["posting_id", "image", "image_phash", "title", "label_group"]
    assert list(test.columns) == ["posting_id", "image", "image_phash", "title"]
    assert list(_read(out, "sample_submission.csv").columns) == ["posting_id", "matches"]
    assert list(_read(out, "test_solution.csv").columns) == ["posting_id", "matches"]
    assert (len(train), len(test)) == (summary["n_train"], summary["n_test"])
    assert summary["n_groups_train"] + summary["n_groups_test"] == SMALL["n_groups"]
    assert train["label_group"].dtype.kind == "i"
    for split, df in (("train", train), ("test", test)):
        assert df["posting_id"].str.fullmatch(rf"{split}_\d+").all()
        assert df["image"].str.fullmatch(r"[0-9a-f]{32}\.jpg").all()
        assert df["image_phash"].str.fullmatch(r"[0-9a-f]{16}").all()
        assert df["posting_id"].is_unique
        assert all((out / f"{split}_images" / name).is_file() for name in df["image"])
        assert sorted(p.name for p in (out / f"{split}_images").iterdir()) == sorted(set(df["image"]))
        assert df["title"].map(str.isascii).all() and (df["title"].str.len() > 0).all()
    assert set(train["posting_id"]).isdisjoint(test["posting_id"])


def test_sample_submission_predicts_self(small):
    out, _ = small
    sub, test = _read(out, "sample_submission.csv"), _read(out, "test.csv")
    assert sub["posting_id"].tolist() == test["posting_id"].tolist()
    assert (sub["matches"] == sub["posting_id"]).all()


def test_no_singleton_groups(small):
    out, _ = small
    assert _read(out, "train.csv")["label_group"].value_counts().min() >= 2
    assert _read(out, "test_solution.csv")["matches"].str.split().map(len).min() >= 2


def test_test_solution_matches_the_planned_groups(small):
    out, _ = small
    solution = _read(out, "test_solution.csv")
    assert solution["posting_id"].tolist() == _read(out, "test.csv")["posting_id"].tolist()
    truth = {pid: set(m.split()) for pid, m in zip(solution["posting_id"], solution["matches"])}
    for pid, group in truth.items():
        assert pid in group
        assert all(truth[other] == group for other in group)  # a partition: every member sees the same set
    _, groups = plan_sample(SMALL["n_groups"], 0.3, SMALL["image_size"], SMALL["seed"])
    planned = {frozenset(lst.posting_id for lst in g) for g in groups if g[0].split == "test"}
    assert {frozenset(g) for g in truth.values()} == planned


def test_train_and_test_groups_are_disjoint():
    _, groups = plan_sample(60, 0.3, 96, 7)
    train = {lst.label_group for g in groups for lst in g if lst.split == "train"}
    test = {lst.label_group for g in groups for lst in g if lst.split == "test"}
    assert train and test and train.isdisjoint(test)
    assert len(test) == round(0.3 * 60)
    assert all(len({lst.split for lst in g}) == 1 for g in groups)


def test_phash_column_is_the_phash_of_the_written_jpeg(small):
    out, _ = small
    for split in ("train", "test"):
        df = _read(out, f"{split}.csv")
        for name, recorded in zip(df["image"], df["image_phash"]):
            with Image.open(out / f"{split}_images" / name) as img:
                assert img.format == "JPEG"
                assert str(imagehash.phash(img)) == recorded


def test_images_are_mostly_square_rgb_jpegs(small):
    out, _ = small
    sizes = []
    for path in (out / "train_images").iterdir():
        with Image.open(path) as img:
            assert img.mode == "RGB"
            sizes.append(img.size)
    assert np.mean([w == h for w, h in sizes]) >= 0.9
    assert min(min(s) for s in sizes) >= 0.5 * SMALL["image_size"]


def test_same_arguments_give_byte_identical_files(small, tmp_path):
    out, _ = small
    again = tmp_path / "again"
    generate_sample(again, workers=2, **SMALL)  # parallel rendering must not change a byte
    for name in ("train.csv", "test.csv", "sample_submission.csv", "test_solution.csv"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    first = sorted((out / "train_images").iterdir())[0]
    assert (again / "train_images" / first.name).read_bytes() == first.read_bytes()


def test_another_seed_gives_another_sample(small, tmp_path):
    out, _ = small
    other = tmp_path / "other"
    generate_sample(other, workers=1, **{**SMALL, "seed": SMALL["seed"] + 1})
    assert (other / "train.csv").read_bytes() != (out / "train.csv").read_bytes()


def test_group_size_sampler_matches_the_real_histogram():
    sizes = sample_group_sizes(50_000, np.random.default_rng(0))
    share = Counter(sizes.tolist())
    n = len(sizes)
    assert sizes.min() == 2 and sizes.max() <= 50
    assert 0.55 <= share[2] / n <= 0.70
    assert 0.12 <= share[3] / n <= 0.20
    assert 0.06 <= share[4] / n <= 0.10
    assert 0.02 <= share[5] / n <= 0.06
    assert 0.05 <= np.mean(sizes >= 6) <= 0.13
    assert np.mean(sizes >= 20) > 0.002  # heavy tail: some big groups
    assert 2.7 <= sizes.mean() <= 3.6  # Kaggle: 34,250 rows / 11,014 groups = 3.1


def test_group_size_distribution_is_a_distribution():
    values, p = group_size_distribution()
    assert np.isclose(p.sum(), 1.0)
    assert 1 not in values and (p > 0).all()


def test_colour_variants_keep_grey_levels():
    # flavour siblings are hue-turned with the grey level kept: the greyscale phash cannot tell them apart
    rng = np.random.default_rng(1)
    for _ in range(50):
        rgb = tuple(int(c) for c in rng.integers(30, 226, size=3))
        turned = _hue_turned(rgb, float(rng.uniform(0.2, 0.8)))
        assert abs(_luma(turned) - _luma(rgb)) <= 3
    assert _hue_turned((200, 40, 40), 0.5) != (200, 40, 40)


def test_families_make_hard_negatives():
    products, groups = plan_sample(200, 0.3, 96, 0)
    by_family = Counter(p.family for p in products)
    siblings = [p for p in products if by_family[p.family] > 1]
    assert len(siblings) >= 0.2 * len(products)
    for fam in {p.family for p in siblings}:
        members = [p for p in products if p.family == fam]
        assert len({p.title.brand for p in members}) == 1  # same brand ...
        assert len({p.title.variant for p in members}) == len(members)  # ... other variant


def test_titles_look_like_marketplace_titles():
    _, groups = plan_sample(200, 0.3, 96, 0)
    titles = [lst.title for g in groups for lst in g]
    text = " ".join(titles).lower()
    for word in ("ready", "cod", "murah", "original", "promo"):
        assert word in text
    assert re.search(r"\d+ ?(gr|ml|g|kg)\b", text)
    assert any(c in text for c in "|/[]-")
    assert np.mean([t.isupper() for t in titles]) > 0.1  # random casing
    # listings of one group share words but are not all the same string
    varied = sum(len({lst.title for lst in g}) > 1 for g in groups)
    assert varied >= 0.8 * len(groups)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="n_groups"):
        generate_sample(tmp_path, n_groups=1, progress=False)
    with pytest.raises(ValueError, match="test_fraction"):
        generate_sample(tmp_path, test_fraction=1.0, progress=False)
    with pytest.raises(ValueError, match="image_size"):
        generate_sample(tmp_path, image_size=8, progress=False)


def test_refuses_a_folder_it_did_not_generate_and_writes_nothing(tmp_path):
    (tmp_path / "test.csv").write_text("the user's own rows\n")
    with pytest.raises(FileExistsError, match="test.csv.*no samesame-sample.json"):
        generate_sample(tmp_path, n_groups=4, image_size=64, progress=False, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.csv"]
    assert (tmp_path / "test.csv").read_text() == "the user's own rows\n"


def test_refuses_its_own_sample_made_with_other_arguments(tmp_path):
    generate_sample(tmp_path, n_groups=4, image_size=64, progress=False, workers=1)
    with pytest.raises(FileExistsError, match="n_groups differ"):
        generate_sample(tmp_path, n_groups=5, image_size=64, progress=False, workers=1)


def test_a_stopped_generation_resumes_with_identical_files(tmp_path):
    generate_sample(tmp_path / "whole", n_groups=6, image_size=64, progress=False, workers=1)
    stopped = tmp_path / "stopped"
    generate_sample(stopped, n_groups=6, image_size=64, progress=False, workers=1)
    photos = sorted((stopped / "train_images").iterdir())
    for photo in photos[::2]:                     # as if killed midway: some photos, no csv, a temporary file
        photo.unlink()
    for csv in stopped.glob("*.csv"):
        csv.unlink()
    (stopped / "train_images" / ".x.jpg.123.tmp").write_bytes(b"half")
    generate_sample(stopped, n_groups=6, image_size=64, progress=False, workers=1)
    for path in sorted((tmp_path / "whole").rglob("*.*")):
        assert (stopped / path.relative_to(tmp_path / "whole")).read_bytes() == path.read_bytes(), path.name


def test_rehearsal_is_kaggles_size_times_the_scale():
    args = rehearsal_arguments(1 / 8)
    assert 0.8 * args["image_size"] >= 512                 # the smallest side drawn (0.8 x 640) is 512 px
    _, groups = plan_sample(args["n_groups"], args["test_fraction"], args["image_size"], 0)
    sizes = Counter(lst.split for group in groups for lst in group)
    assert sizes["train"] == pytest.approx(34_250 / 8, rel=0.05)
    assert sizes["test"] == pytest.approx(70_000 / 8, rel=0.05)
    train_groups = sum(group[0].split == "train" for group in groups)
    assert train_groups == pytest.approx(11_000 / 8, rel=0.05)
    with pytest.raises(ValueError, match="scale"):
        rehearsal_arguments(0)


def test_cli_prints_the_summary(tmp_path, capsys):
    summary = main([str(tmp_path / "cli"), "--groups", "6", "--seed", "1", "--image-size", "64", "--workers", "1"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == summary
    assert set(summary) == {"n_train", "n_test", "n_groups_train", "n_groups_test", "seconds"}
    assert summary["n_groups_train"] + summary["n_groups_test"] == 6
    assert (tmp_path / "cli" / "train.csv").is_file()
