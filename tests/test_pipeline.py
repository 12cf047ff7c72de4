"""End to end: every notebook through papermill on a tiny generated sample, as `make all` runs them. One run per
`make test` (the module fixture), every test asserting on its records; the two missing-signal reruns are `slow`
(`make test-all`)."""

import json
import os
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from samesame.data.sample import generate_sample
from samesame.data.submission import validate_submission
from samesame.run import settings
from samesame.run import pipeline
from samesame.run.pipeline import notebooks, run_notebooks
from samesame.run.settings import REPO


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data_dir = root / "data"
    generate_sample(data_dir, progress=False, **asdict(settings.load("tiny").sample))
    run = run_notebooks("tiny", "e2e", data_dir=str(data_dir), runs_root=root / "runs")
    return run, data_dir


def test_every_notebook_ran_and_recorded_its_metrics(tiny_run):
    run, _ = tiny_run
    metrics = json.loads((run.path / "metrics.json").read_text())
    expected = [nb.stem for nb in notebooks()]
    assert list(metrics) == expected
    for nb in expected:
        assert (run.path / f"{nb}.ipynb").exists()
    eda = metrics["01_eda"]
    assert eda["n_postings"] > 0 and set(eda["groups_of_size"]) >= {"2"}
    assert "n_rows" in metrics["07_submission"] and "method" in metrics["07_submission"]
    assert (run.path / "params.yaml").exists() and list((run.path / "figures").glob("*.png"))
    board = pd.read_csv(run.path.parent / "leaderboard.csv")
    assert set(board["notebook"]) == set(expected)


# Known answers of the tiny profile (2-core x86 CPU; 07 and 06's best since the recipe's steps are chosen by
# cross-fitting: blend(tfidf)+units+min2). phash is exact arithmetic; the image and title models train in TensorFlow
# (the title layers in float32, or bfloat16 where the CPU has BF16 units), so their scores get a tolerance of about
# one listing of the small splits; both passed it.
KNOWN_F1 = {
    ("02_phash", "test_mean_f1"): (0.6273, 0.001),
    ("02_phash", "train_mean_f1"): (0.7644, 0.001),
    ("05_metric", "cosine", "test_mean_f1"): (0.6162, 0.03),
    ("07_submission", "test_mean_f1"): (0.9211, 0.06),
}


TENSORFLOW_LOG_LINES = ("absl::InitializeLog", "cpu_feature_guard", "oneDNN custom operations", "I0000 00:00")


def test_executed_notebooks_hold_no_tensorflow_log_lines(tiny_run):
    run, _ = tiny_run
    for nb in notebooks():
        text = (run.path / f"{nb.stem}.ipynb").read_text()
        assert not [line for line in TENSORFLOW_LOG_LINES if line in text], nb.stem


@pytest.mark.skipif(os.name != "posix", reason="Unix sockets")
def test_a_notebooks_kernel_is_reached_over_private_unix_sockets_not_tcp(tmp_path, capfd):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from ipykernel.kernelapp import IPKernelApp\nprint(IPKernelApp.instance().transport, IPKernelApp.instance().ip)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "in.ipynb")
    pipeline.execute_notebook(tmp_path / "in.ipynb", tmp_path / "out.ipynb", {}, tmp_path)
    transport, ip = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs[0]["text"].split()
    assert transport == "ipc" and Path(ip).parent.name.startswith("samesame-kernel-")
    assert not Path(ip).parent.exists()                 # the folder and its sockets went with the kernel
    assert "without encryption" not in capfd.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ipynb", "out.ipynb"]


def test_tiny_run_scores_its_known_f1(tiny_run):
    run, _ = tiny_run
    metrics = json.loads((run.path / "metrics.json").read_text())
    for (*keys, last), (expected, tolerance) in KNOWN_F1.items():
        value = metrics
        for key in keys:
            value = value[key]
        assert value[last] == pytest.approx(expected, abs=tolerance), (*keys, last)
    best = {row["method"]: row["mean_f1"] for row in metrics["06_error_analysis"]["ablation"]}
    assert best["best"] == pytest.approx(0.9028, abs=0.06) and "image" in best


def test_every_notebook_ends_with_its_answer_and_the_run_says_how_it_was_made(tiny_run):
    run, _ = tiny_run
    for nb in notebooks():
        last = nbformat.read(run.path / nb.name, as_version=4).cells[-1]
        assert f'answers.answer("{nb.stem}"' in last.source
        assert last.outputs[0]["data"]["text/markdown"].startswith("**Answer:** "), nb.stem
    record = run.params()
    assert record["command"] == "python -m samesame.run.pipeline run --profile tiny --run e2e --data-dir <your Kaggle folder>"
    assert record["commit"] and "CPU cores" in record["machine"]
    assert list(record["wall_seconds"]) == [nb.stem for nb in notebooks()]
    assert record["settings"]["train_seed"] == 0 and record["settings"]["split"]["seed"] == 0   # the resolved settings


def test_submission_is_valid_and_scored(tiny_run):
    run, data_dir = tiny_run
    sub = pd.read_csv(run.path / "submission.csv")
    test = pd.read_csv(data_dir / "test.csv")
    validate_submission(sub, test)
    m = json.loads((run.path / "metrics.json").read_text())["07_submission"]
    assert m["n_rows"] == len(test) and 0 < m["test_mean_f1"] <= 1


def test_a_failing_notebook_stops_the_run_and_stays_readable(tmp_path, tiny_kaggle, monkeypatch):
    failing = tmp_path / "01_fails.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('raise ValueError("a cell failed")')])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, failing)
    monkeypatch.setattr(pipeline, "notebooks", lambda only: [failing])
    with pytest.raises(SystemExit, match="01_fails.*failed in cell.*a cell failed"):
        run_notebooks("tiny", "broken", data_dir=str(tiny_kaggle), only=["01"], runs_root=tmp_path / "runs")
    assert (tmp_path / "runs" / "broken" / "01_fails.ipynb").exists()


def test_a_stopped_make_all_keeps_its_finished_notebooks_and_a_named_one_reruns(tmp_path, tiny_kaggle, monkeypatch):
    log = tmp_path / "executed.txt"
    stubs = []
    for name in ("01_first", "02_second"):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            f"open({str(log)!r}, 'a').write('{name} ')\nif __import__('os').path.exists({str(tmp_path / 'stop')!r}) "
            f"and '{name}' == '02_second':\n    raise KeyboardInterrupt('stopped')")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
        stubs.append(tmp_path / f"{name}.ipynb")
    monkeypatch.setattr(pipeline, "notebooks", lambda only: stubs if not only else stubs[:1])
    (tmp_path / "stop").touch()
    with pytest.raises(SystemExit, match="02_second.*failed"):
        run_notebooks("tiny", "r", data_dir=str(tiny_kaggle), runs_root=tmp_path / "runs")
    (tmp_path / "stop").unlink()
    run_notebooks("tiny", "r", data_dir=str(tiny_kaggle), runs_root=tmp_path / "runs")         # make all again
    assert log.read_text() == "01_first 02_second 02_second "                                 # 01 kept
    run_notebooks("tiny", "r", data_dir=str(tiny_kaggle), only=["01"], runs_root=tmp_path / "runs")   # make eda
    run_notebooks("tiny", "r", data_dir=str(tiny_kaggle), runs_root=tmp_path / "runs")
    assert log.read_text() == "01_first 02_second 02_second 01_first "      # same inputs: both finished, kept
    edited = nbformat.read(stubs[0], as_version=4)
    edited.cells.append(nbformat.v4.new_markdown_cell("edited"))
    nbformat.write(edited, stubs[0])
    run_notebooks("tiny", "r", data_dir=str(tiny_kaggle), runs_root=tmp_path / "runs")
    assert log.read_text().endswith("01_first 01_first 02_second ")    # 01 edited: it and every later one run


def test_artefacts_are_files_and_a_second_07_loads_the_saved_matcher(tiny_run):
    run, data_dir = tiny_run
    models = run.path / "models"
    assert (models / "backbone.json").exists() and (models / "finetune.json").exists()
    levers = json.loads((models / "embedding.json").read_text())      # 05's levers, part of the image model
    assert set(levers["levers"]) == {"flip", "whiten"} and levers["study"]["chosen"]
    assert (models / "matcher" / "matcher.json").exists() and (models / "matcher" / "recipe.json").exists()
    metrics = json.loads((run.path / "metrics.json").read_text())
    first = metrics["07_submission"]
    assert first["matcher_loaded"] is True and first["fit_seconds"] == 0      # 06 fitted and saved it
    assert first["method"] == metrics["06_error_analysis"]["shipped"]["method"]   # 06 reports what 07 ships
    submission = (run.path / "submission.csv").read_text()
    run_notebooks("tiny", "e2e", data_dir=str(data_dir), only=["07_submission"], runs_root=run.path.parent)
    second = json.loads((run.path / "metrics.json").read_text())["07_submission"]
    assert second["matcher_loaded"] is True and second["fit_seconds"] == 0
    assert second["matches_sha256"] == first["matches_sha256"]
    assert (run.path / "submission.csv").read_text() == submission


def _blank_titles(data_dir):
    for name in ("train.csv", "test.csv"):
        df = pd.read_csv(data_dir / name, dtype=str, keep_default_na=False)
        df.assign(title="").to_csv(data_dir / name, index=False)


def _remove_images(data_dir):
    for folder in ("train_images", "test_images"):
        shutil.rmtree(data_dir / folder)


@pytest.mark.slow
@pytest.mark.parametrize("variant, make, dropped", [
    ("photos only", _blank_titles, {"tfidf", "title"}),
    ("titles only", _remove_images, {"image"}),
])
def test_one_missing_signal_runs_every_notebook_and_says_what_was_dropped(tmp_path, variant, make, dropped):
    """Image-only data (every title empty) and title-only data (no image on disk) run 01..07 end to end."""
    data_dir = tmp_path / "data"
    generate_sample(data_dir, progress=False, **asdict(settings.load("tiny").sample))
    make(data_dir)
    run = run_notebooks("tiny", "one-signal", data_dir=str(data_dir), runs_root=tmp_path / "runs")
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert set(metrics["06_error_analysis"]["dropped_signals"]) == dropped, variant
    validate_submission(pd.read_csv(run.path / "submission.csv"), pd.read_csv(data_dir / "test.csv"))
    assert metrics["07_submission"]["method"] == metrics["06_error_analysis"]["shipped"]["method"]


def _make_n(*args: str) -> subprocess.CompletedProcess:
    """What make would run (a dry run: nothing runs)."""
    return subprocess.run(["make", "-n", *args], cwd=REPO, capture_output=True, text=True)


def test_make_quotes_its_arguments_and_checks_a_submission_before_building_what_it_reads():
    lines = _make_n("submission", "RUN=t", "DATA_DIR=/data/my shopee's").stdout.splitlines()
    data_dir = "--data-dir '/data/my shopee'\\''s'"
    check = next(i for i, line in enumerate(lines) if line.endswith(f"{data_dir} --only 07_submission --check"))
    fit = next(i for i, line in enumerate(lines) if "samesame.run.pipeline fit --profile 'kaggle' --run 't'" in line)
    builds = [i for i, line in enumerate(lines) if "03_backbone_compare" in line]
    assert check < min(builds) < fit and lines[fit].endswith(data_dir)


@pytest.mark.parametrize("run, message", [
    ("RUN=a b", 'RUN="a b" holds a space: a run lives in runs/<RUN>/'),
    ("RUN=", "RUN is empty: name the run (RUN=<name>), or leave RUN out for a timestamp"),
    ("RUN=" + "a" * 300, "RUN is 300 characters long: choose a name of at most 100"),
], ids=["a space", "empty", "too long"])
def test_make_refuses_a_run_name_in_one_line(run, message):
    done = _make_n("all", run)
    assert done.returncode != 0 and message in done.stderr and len(done.stderr.splitlines()) == 1
