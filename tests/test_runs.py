import json

import numpy as np
import pandas as pd
import pytest

from samesame.data.listings import DataError
from samesame.run.pipeline import fit_run, run_notebooks
from samesame.run.runs import Run, RunError, flatten_metrics, update_leaderboard


def test_record_merges_per_notebook_and_makes_json_plain(tmp_path):
    run = Run(tmp_path / "r1")
    run.record("02_phash", {"threshold": np.int64(8), "train_mean_f1": np.float32(0.5)})
    run.record("02_phash", {"test_mean_f1": float("nan")})
    run.record("01_eda", {"groups_of_size": {2: 5}})
    data = json.loads((tmp_path / "r1" / "metrics.json").read_text())
    assert data["02_phash"] == {"threshold": 8, "train_mean_f1": 0.5, "test_mean_f1": None}
    assert data["01_eda"] == {"groups_of_size": {"2": 5}}
    assert (tmp_path / "r1" / "figures").is_dir() and (tmp_path / "r1" / "models").is_dir()


def test_flatten_keeps_scalars_only():
    assert flatten_metrics({"a": {"b": 1, "c": [1, 2], "d": None}, "e": "x"}) == {"a.b": 1, "e": "x"}


def test_leaderboard_replaces_the_runs_rows(tmp_path):
    r1, r2 = Run(tmp_path / "r1"), Run(tmp_path / "r2")
    r1.record("02_phash", {"test_mean_f1": 0.6})
    r2.record("02_phash", {"test_mean_f1": 0.7})
    update_leaderboard(r1, tmp_path)
    update_leaderboard(r2, tmp_path)
    r1.record("02_phash", {"test_mean_f1": 0.65})
    board = update_leaderboard(r1, tmp_path)
    on_disk = pd.read_csv(tmp_path / "leaderboard.csv")
    assert len(on_disk) == 2 and len(board) == 2
    assert on_disk.set_index("run").loc["r1", "value"] == 0.65


def test_run_record_round_trips_and_names_the_machine(tmp_path):
    from samesame.run.runs import machine

    run = Run(tmp_path / "r1")
    assert run.params() == {}
    run.write_params({"profile": "tiny", "wall_seconds": {"01_eda": np.float64(1.5)}, "backbones": ["a", "b"]})
    assert run.params() == {"profile": "tiny", "wall_seconds": {"01_eda": 1.5}, "backbones": ["a", "b"]}
    assert "CPU cores" in machine() and "Python 3." in machine()


def test_a_run_name_that_leaves_runs_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(RunError, match=r"RUN='../escape' is not a plain folder name"):
        run_notebooks("tiny", "../escape", data_dir=str(tmp_path), runs_root=tmp_path / "runs")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "does not exist"),
    (lambda d: d.write_text("x"), "is a file, not a folder"),
], ids=["missing", "a file"])
def test_a_bad_data_dir_stops_in_one_line_and_leaves_no_run_folder(tmp_path, make, message):
    make(tmp_path / "data")
    with pytest.raises(DataError, match=f"DATA_DIR {tmp_path / 'data'} {message}: run `make sample`"):
        run_notebooks("tiny", "r", data_dir=str(tmp_path / "data"), runs_root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_runs_or_models_that_cannot_be_written_stop_before_the_fit(tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(RunError, match=f"{tmp_path / 'runs'} is a file, so .* cannot be a folder"):
        run_notebooks("tiny", "r", data_dir=str(tmp_path), runs_root=tmp_path / "runs")
    (tmp_path / "runs").unlink()
    (tmp_path / "runs" / "r").mkdir(parents=True)
    (tmp_path / "runs" / "r" / "models").write_text("not a folder")
    with pytest.raises(RunError, match="models is a file"):
        fit_run("tiny", "r", data_dir=str(tmp_path), runs_root=tmp_path / "runs")


def test_an_unknown_notebook_leaves_no_params_yaml(tmp_path):
    with pytest.raises(SystemExit, match=r"no notebook matches \['99_nothing'\]"):
        run_notebooks("tiny", "k", data_dir=str(tmp_path), only=["99_nothing"], runs_root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
