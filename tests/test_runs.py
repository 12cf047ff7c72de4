import json
import multiprocessing

import numpy as np
import pandas as pd
import pytest
import side_by_side

from samesame.data.listings import DataError
from samesame.run.pipeline import fit_run, main, notebooks, run_notebooks
from samesame.run.runs import Run, RunError, flatten_metrics, update_leaderboard, writing


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


def test_metrics_and_the_leaderboard_written_side_by_side_lose_nothing_and_never_read_half(tmp_path):
    run, times = Run(tmp_path / "r"), 25
    spawn = multiprocessing.get_context("spawn")
    writers = [spawn.Process(target=side_by_side.record_and_rank, args=(run.path, tmp_path, w, times)) for w in "ab"]
    for w in writers:
        w.start()
    reads = 0
    while any(w.is_alive() for w in writers):       # a half-written file would raise here
        run.metrics()
        if (tmp_path / "leaderboard.csv").exists():
            pd.read_csv(tmp_path / "leaderboard.csv")
        reads += 1
    for w in writers:
        w.join()
        assert w.exitcode == 0
    expected = {f"{w}{i}" for w in "ab" for i in range(times)}
    assert set(run.metrics()) == expected and reads > 0
    assert set(pd.read_csv(tmp_path / "leaderboard.csv")["notebook"]) == expected


def test_a_second_command_on_a_run_stops_in_one_line_naming_the_first_and_a_killed_one_blocks_nothing(
        tmp_path, tiny_kaggle):
    spawn = multiprocessing.get_context("spawn")
    held, release = spawn.Event(), spawn.Event()
    holder = spawn.Process(target=side_by_side.hold_run, args=(
        tmp_path / "runs" / "r", "python -m samesame.run.pipeline fit --profile tiny --run r", held, release))
    holder.start()
    assert held.wait(60)
    with pytest.raises(RunError) as refused:
        run_notebooks("tiny", "r", data_dir=str(tiny_kaggle), only=["01_eda"], runs_root=tmp_path / "runs")
    assert str(refused.value) == (f"runs/r is being written by pid {holder.pid} (python -m samesame.run.pipeline fit "
                                  "--profile tiny --run r); wait for it or choose another RUN")
    assert not (tmp_path / "runs" / "r" / "params.yaml").exists()
    holder.kill()                                   # its lock goes with it
    holder.join()
    with writing(tmp_path / "runs" / "r", "next") as run:
        assert run.path.is_dir()


def test_an_over_long_run_name_is_one_line(tmp_path):
    with pytest.raises(RunError, match=r"RUN=a{20}\.\.\. is 300 characters long: choose a name of at most 100"):
        run_notebooks("tiny", "a" * 300, data_dir=str(tmp_path), runs_root=tmp_path / "runs")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_notebook_name_selects_nothing():
    for only in ([" "], []):
        with pytest.raises(SystemExit, match="an empty notebook name; name notebooks or prefixes"):
            notebooks(only)
    with pytest.raises(SystemExit, match=r"--only \[''\]: an empty notebook name"):
        main(["run", "--profile", "tiny", "--only", ""])


def test_a_fit_on_a_fresh_run_names_the_make_target_and_leaves_no_folder(tmp_path, tiny_kaggle):
    with pytest.raises(RunError, match=r"embedding.json not found: build it with `make metric RUN=fresh` "
                                       r"\(`make fit RUN=fresh` and `make submission RUN=fresh` build what they need\)"):
        fit_run("tiny", "fresh", data_dir=str(tiny_kaggle), runs_root=tmp_path / "runs")
    assert not (tmp_path / "runs" / "fresh").exists()


def _no_test_csv(data):
    (data / "test.csv").unlink()


def _empty_posting_id(data):
    train = pd.read_csv(data / "train.csv")
    train.loc[3, "posting_id"] = " "
    train.to_csv(data / "train.csv", index=False)


def _no_rows(data):
    (data / "train.csv").write_text("posting_id,image,image_phash,title,label_group\n")


def _foreign_solution(data):
    pd.DataFrame({"posting_id": ["test_0", "other"], "matches": ["test_0", "other"]}).to_csv(
        data / "test_solution.csv", index=False)


@pytest.mark.parametrize("spoil, message", [
    (_no_test_csv, "test.csv not found: 07_submission writes a submission of every test listing"),
    (_empty_posting_id, "train.csv: 1 row\\(s\\) with an empty posting_id"),
    (_foreign_solution, "test_solution.csv: its posting ids are not test.csv's"),
    (_no_rows, "train.csv has a header but no rows"),
], ids=["no test.csv", "empty posting_id", "another test's solution", "no rows"])
def test_inputs_are_checked_before_any_work_and_a_saved_matcher_is_left_alone(tmp_path, tiny_kaggle, spoil, message):
    spoil(tiny_kaggle)
    saved = tmp_path / "runs" / "r" / "models" / "matcher" / "matcher.json"
    saved.parent.mkdir(parents=True)
    saved.write_text("the run's matcher")
    for check_only in (True, False):                # make submission's check, then 07 itself
        with pytest.raises(DataError, match=message):
            run_notebooks("tiny", "r", data_dir=str(tiny_kaggle), only=["07"], runs_root=tmp_path / "runs",
                          check_only=check_only)
    assert saved.read_text() == "the run's matcher" and not (saved.parents[2] / "params.yaml").exists()


def test_a_cache_that_cannot_hold_its_folders_is_named_at_start(tmp_path, tiny_kaggle):
    profile = tmp_path / "p.yaml"
    profile.write_text(f"cache_dir: {tmp_path / 'cache'}\n")
    (tmp_path / "cache").write_text("a file")
    with pytest.raises(RunError, match=f"{tmp_path / 'cache'} is a file, so .* cannot be a folder: move the file "
                                       "away or set cache_dir to another folder"):
        run_notebooks(str(profile), "r", data_dir=str(tiny_kaggle), runs_root=tmp_path / "runs")
    (tmp_path / "cache").unlink()
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "efficientnet_lite0-64-0123456789abcdef").write_text("not a folder")
    with pytest.raises(RunError, match="efficientnet_lite0-64-0123456789abcdef is a file where the cache keeps a "
                                       "folder: delete it \\(or make clean-cache\\)"):
        run_notebooks(str(profile), "r", data_dir=str(tiny_kaggle), runs_root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
