"""The `gpu` profile end to end on a CPU with mixed precision forced on, so that its dtype and shape errors surface
in CI and not on the first Kaggle user's GPU.

The profile is configs/gpu.yaml itself (every title layer trained, both fine-tuning heads and unfreeze levels, its
ArcFace margins and schedules) with only the sizes shrunk to the tiny sample and ``precision: mixed_float16``.
"""

import json
from dataclasses import asdict

import nbformat
import pandas as pd
import pytest
import yaml

from samesame.data.listings import load_dataset
from samesame.data.sample import generate_sample
from samesame.data.submission import validate_submission
from samesame.run import settings
from samesame.run.pipeline import notebooks, run_notebooks

pytestmark = pytest.mark.slow

TINY_SIZES = {   # the gpu profile at the tiny sample's sizes; every other gpu.yaml value stays
    "precision": "mixed_float16", "progress": False,
    "image": {"backbones": ["efficientnet_lite0", "random_lite0"], "image_size": 64, "batch_size": 16},
    "finetune": {"image_size": 64, "epochs": [1, 2], "views": 2, "batch_size": 16, "margin_ramp_epochs": 1},
    "title_encoder": {"epochs": 2, "batch_size": 16},
    "tuning": {"pair_trees": 50, "pair_max_leaf_nodes": 15},
}


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu")
    tiny = settings.load("tiny")
    gpu = yaml.safe_load(settings.profile_path("gpu").read_text())
    profile = root / "gpu-tiny.yaml"
    profile.write_text(yaml.safe_dump(settings.merge(gpu, {**TINY_SIZES, "study": asdict(tiny.study)})))
    data_dir = root / "data"
    generate_sample(data_dir, progress=False, **asdict(tiny.sample))
    run = run_notebooks(str(profile), "gpu", data_dir=str(data_dir), runs_root=root / "runs")
    return run, data_dir, profile


def test_the_profile_is_the_gpu_profile_with_mixed_precision(gpu_run):
    _, _, profile = gpu_run
    cfg = settings.load(profile)
    assert cfg.precision == "mixed_float16"
    assert cfg.title_encoder.train_layers == 12 and cfg.title_encoder == settings.load(
        "gpu", {"title_encoder": TINY_SIZES["title_encoder"]}).title_encoder
    assert set(cfg.finetune.heads) == {"softmax", "arcface"} and len(cfg.finetune.unfreeze) == 2


def test_every_notebook_ran_under_mixed_float16_and_wrote_a_valid_submission(gpu_run):
    run, data_dir, _ = gpu_run
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert list(metrics) == [nb.stem for nb in notebooks()]
    for name in ("03_backbone_compare", "04_finetune", "05_metric", "06_error_analysis", "07_submission"):
        cells = nbformat.read(run.path / f"{name}.ipynb", as_version=4).cells
        setup = next(c for c in cells if "configure_accelerator(cfg.precision)" in c.source)
        printed = "".join(o.get("text", "") for o in setup.outputs)
        assert "device: cpu (mixed_float16)" in printed, name
    assert metrics["04_finetune"]["rows"], "no fine-tuned snapshot under mixed precision"
    sub = pd.read_csv(run.path / "submission.csv")
    validate_submission(sub, load_dataset(data_dir).test)
    matcher = json.loads((run.path / "models" / "matcher" / "matcher.json").read_text())
    assert matcher["title_encoder"] is not None
