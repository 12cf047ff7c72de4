"""RESULTS.md is generated from run folders alone: answers, run record, small figures."""

import numpy as np
import pytest
from PIL import Image

from samesame.run.runs import Run
from samesame.study.results import MAX_FIGURE_BYTES, duration, shrink_png, write_results


def _fake_run(root, name, wall, commit="abc1234"):
    run = Run(root / name)
    run.record("02_phash", {"threshold": 6, "train_mean_f1": 0.58, "test_mean_f1": 0.60})
    run.write_params({"profile": "sample", "command": f"python -m samesame.run.pipeline run --profile sample --run {name}",
                      "commit": commit, "machine": "Linux x86_64, 2 CPU cores", "wall_seconds": wall,
                      "data_dir": "/somewhere/data/sample"})
    noise = np.random.default_rng(0).integers(0, 255, (900, 1200, 3), dtype=np.uint8)   # ~3 MB as PNG
    Image.fromarray(noise).save(run.figure_path("02_f1_vs_threshold"))
    return run


def test_page_holds_answers_run_record_and_small_figures(tmp_path):
    runs_root = tmp_path / "runs"
    _fake_run(runs_root, "sample-a", {"01_eda": 5.0, "02_phash": 70.4})
    _fake_run(runs_root, "dev-b", {"02_phash": 4000.0})
    figures = tmp_path / "docs" / "figures"
    figures.mkdir(parents=True)
    (figures / "stale.png").write_bytes(b"old")
    page = write_results(["sample-a", "dev-b"], runs_root, tmp_path / "RESULTS.md", figures).read_text()
    assert 'make results RUNS="sample-a dev-b"' in page
    assert ("| sample-a | sample | sample | `python -m samesame.run.pipeline run --profile sample --run sample-a` | abc1234 "
            "| Linux x86_64, 2 CPU cores | 1 min 15 s |") in page
    assert "| dev-b |" in page and "1 h 6 min" in page
    assert page.count("### 02_phash") == 2 and "reproduces the seed's 0.613" in page and "### 01_eda" not in page
    assert "![sample-a-02_f1_vs_threshold](docs/figures/sample-a-02_f1_vs_threshold.png)" in page
    written = sorted(p.name for p in figures.iterdir())
    assert written == ["dev-b-02_f1_vs_threshold.png", "sample-a-02_f1_vs_threshold.png"]      # stale one gone
    assert all((figures / n).stat().st_size <= MAX_FIGURE_BYTES for n in written)


def test_each_step_shows_its_wall_and_cpu_time_and_peak_memory(tmp_path):
    run = _fake_run(tmp_path / "runs", "reh", {"03_backbone_compare": 600.0})
    run.write_params({**run.params(), "cpu_seconds": {"03_backbone_compare": 1150.0},
                      "peak_rss_gb": {"03_backbone_compare": 3.2}})
    run.record("kaggle_notebook", {"wall_seconds": 4000.0, "cpu_seconds": 7900.0, "peak_rss_gb": 9.5})
    page = write_results(["reh"], tmp_path / "runs", tmp_path / "RESULTS.md", tmp_path / "figures").read_text()
    assert "| 03_backbone_compare | 10 min 0 s | 19 min 10 s | 3.2 GiB |" in page
    assert "| kaggle_notebook | 1 h 6 min | 2 h 11 min | 9.5 GiB |" in page


@pytest.mark.parametrize("commit", ["abc1234-dirty", "unknown", None])
def test_a_run_made_on_an_uncommitted_tree_is_refused_by_name(tmp_path, commit):
    _fake_run(tmp_path / "runs", "clean", {"01_eda": 1.0})
    _fake_run(tmp_path / "runs", "local", {"01_eda": 1.0}, commit=commit)
    with pytest.raises(ValueError, match=r"uncommitted tree.*local \(" + str(commit or "no commit")):
        write_results(["clean", "local"], tmp_path / "runs", tmp_path / "RESULTS.md", tmp_path / "figures")
    assert not (tmp_path / "RESULTS.md").exists()


def test_a_fit_made_on_an_uncommitted_tree_is_refused(tmp_path):
    _fake_run(tmp_path / "runs", "fitted", {"01_eda": 1.0}).record("fit", {"commit": "abc1234-dirty"})
    with pytest.raises(ValueError, match="fitted \\(abc1234-dirty"):
        write_results(["fitted"], tmp_path / "runs", tmp_path / "RESULTS.md", tmp_path / "figures")


def test_missing_runs_say_which_and_what_exists(tmp_path):
    _fake_run(tmp_path, "sample-a", {})
    with pytest.raises(ValueError, match=r"no metrics.json in .*nope.*recorded: \['sample-a'\]"):
        write_results(["sample-a", "nope"], tmp_path, tmp_path / "R.md", tmp_path / "f")
    with pytest.raises(ValueError, match="name the runs to report"):
        write_results([], tmp_path, tmp_path / "R.md", tmp_path / "f")


def test_shrink_keeps_small_figures_sharp(tmp_path):
    Image.new("RGB", (800, 600), "white").save(tmp_path / "a.png")
    assert Image.open(shrink_png(tmp_path / "a.png", tmp_path / "b.png")).size == (800, 600)


def test_duration():
    assert [duration(s) for s in (12.4, 587, 5640)] == ["12 s", "9 min 47 s", "1 h 34 min"]
