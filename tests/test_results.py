"""RESULTS.md is generated from run folders alone: answers, run record, small figures."""

import numpy as np
import pytest
from PIL import Image

from samesame.run.runs import Run
from samesame.study.results import MAX_FIGURE_BYTES, duration, shrink_png, write_results


def _fake_run(root, name, wall):
    run = Run(root / name)
    run.record("02_phash", {"threshold": 6, "train_mean_f1": 0.58, "test_mean_f1": 0.60})
    run.write_params({"profile": "sample", "command": f"python -m samesame.run.pipeline run --profile sample --run {name}",
                      "commit": "abc1234", "machine": "Linux x86_64, 2 CPU cores", "wall_seconds": wall,
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
