"""The bundle's notebook run as Kaggle runs it (samesame.run.rehearsal): what it refuses before running."""

from __future__ import annotations

import os

import pytest

from samesame.data.listings import DataError
from samesame.run.rehearsal import OFFLINE, main, run_bundle_notebook


def test_a_missing_bundle_is_named_with_the_command_that_builds_it(tmp_path):
    with pytest.raises(DataError, match="make kaggle RUN="):
        run_bundle_notebook(tmp_path / "dist", tmp_path, tmp_path / "working")
    assert not (tmp_path / "working").exists()


def test_the_command_line_stops_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("samesame.run.rehearsal.RUNS_ROOT", tmp_path / "runs")
    with pytest.raises(SystemExit, match="error: DATA_DIR .*nowhere does not exist"):
        main(["--run", "r", "--data-dir", str(tmp_path / "nowhere"), "--bundle", str(tmp_path / "dist")])
    assert not (tmp_path / "runs" / "r").exists()
    assert not any(key in os.environ and os.environ[key] == value for key, value in OFFLINE.items())
