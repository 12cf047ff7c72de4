"""End to end: every notebook through papermill on a tiny generated sample, as `make all` runs them."""

import json

import pandas as pd
import pytest

from samesame.pipeline import load_profile, notebooks, run_notebooks
from samesame.sample import generate_sample
from samesame.submission import validate_submission

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data_dir = root / "data"
    generate_sample(data_dir, progress=False, **load_profile("tiny")["sample"])
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
    assert 0 < metrics["02_phash"]["test_mean_f1"] <= 1
    assert "n_rows" in metrics["07_submission"] and "method" in metrics["07_submission"]
    assert (run.path / "params.yaml").exists() and list((run.path / "figures").glob("*.png"))
    board = pd.read_csv(run.path.parent / "leaderboard.csv")
    assert set(board["notebook"]) == set(expected)


def test_submission_is_valid_and_scored(tiny_run):
    run, data_dir = tiny_run
    sub = pd.read_csv(run.path / "submission.csv")
    test = pd.read_csv(data_dir / "test.csv")
    validate_submission(sub, test)
    m = json.loads((run.path / "metrics.json").read_text())["07_submission"]
    assert m["n_rows"] == len(test) and 0 < m["test_mean_f1"] <= 1


def test_a_failing_notebook_stops_the_run_and_stays_readable(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("posting_id,image,image_phash,title,label_group\n")
    with pytest.raises(SystemExit, match="01_eda.*failed in cell.*no rows"):
        run_notebooks("tiny", "broken", data_dir=str(tmp_path / "data"), only=["01_eda"], runs_root=tmp_path / "runs")
    assert (tmp_path / "runs" / "broken" / "01_eda.ipynb").exists()


def test_artefacts_are_files_and_a_second_07_loads_the_saved_matcher(tiny_run):
    run, data_dir = tiny_run
    models = run.path / "models"
    assert (models / "backbone.json").exists() and (models / "finetune.json").exists()
    assert (models / "matcher" / "matcher.json").exists() and (models / "matcher" / "recipe.json").exists()
    first = json.loads((run.path / "metrics.json").read_text())["07_submission"]
    assert first["matcher_loaded"] is False and first["fit_seconds"] > 0
    submission = (run.path / "submission.csv").read_text()
    run_notebooks("tiny", "e2e", data_dir=str(data_dir), only=["07_submission"], runs_root=run.path.parent)
    second = json.loads((run.path / "metrics.json").read_text())["07_submission"]
    assert second["matcher_loaded"] is True and second["fit_seconds"] == 0
    assert second["matches_sha256"] == first["matches_sha256"]
    assert (run.path / "submission.csv").read_text() == submission
