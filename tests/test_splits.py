"""Whole-group samples for the study questions (samesame.core.splits.sample_groups) and how a notebook says so."""

from __future__ import annotations

import pandas as pd

from samesame.core.splits import sample_groups
from samesame.run import settings
from samesame.study.answers import sample_note


def _listings(sizes: dict[int, int]) -> pd.DataFrame:
    return pd.DataFrame({"label_group": [g for g, n in sizes.items() for _ in range(n)]})


def test_a_sample_keeps_whole_groups_under_the_cap_and_is_stable():
    df = _listings({g: 1 + g % 5 for g in range(200)})
    sampled = sample_groups(df, 100, seed=0)
    assert 90 <= len(sampled) <= 100 and list(sampled.index) == list(range(len(sampled)))
    kept = sampled["label_group"].value_counts()
    assert all(kept[g] == 1 + g % 5 for g in kept.index)                         # no group cut
    shuffled = df.sample(frac=1, random_state=1)
    assert set(sample_groups(shuffled, 100, seed=0)["label_group"]) == set(kept.index)   # not the row order
    assert set(sample_groups(df, 100, seed=1)["label_group"]) != set(kept.index)


def test_no_cap_or_a_small_table_keeps_everything():
    df = _listings({1: 2, 2: 3})
    assert len(sample_groups(df, None)) == 5 and len(sample_groups(df, 5)) == 5


def test_the_study_sample_is_recorded_and_told():
    cfg = settings.load("tiny", {"study": {"max_listings": 20}})
    full = {"train": _listings({g: 3 for g in range(30)}), "test": _listings({g: 2 for g in range(5)})}
    sampled = cfg.study.sampled(full, seed=0)
    record = cfg.study.sample_record(full, sampled)["study_sample"]
    assert record["train"]["of"] == 90 and record["train"]["listings"] <= 20 and record["test"] == {"listings": 10,
                                                                                                    "of": 10}
    assert f"{record['train']['listings']} of 90 train and 10 of 10 test listings" in sample_note(record)
    assert cfg.study.sample_record(full, full) == {"study_sample": None}
