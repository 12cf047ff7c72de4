"""Artefact lookup by file (not by metrics.json keys), and when a saved matcher may be reused."""

import json
import subprocess
import sys

import pytest

from samesame import artefacts
from samesame.runs import Run


def test_missing_artefact_names_the_make_target(tmp_path):
    run = Run(tmp_path / "r")
    with pytest.raises(FileNotFoundError, match="make finetune RUN=r"):
        artefacts.has_finetuned(run)
    (run.path / "models" / "finetune.json").write_text(json.dumps({"rows": [], "best": {}, "skipped": "few images"}))
    with pytest.raises(FileNotFoundError, match="make backbones RUN=r"):
        artefacts.image_model_spec(run)
    artefacts.save_backbone_choice(run, {"best": "efficientnet_lite0", "efficientnet_lite0": {"train_mean_f1": 0.6}})
    assert artefacts.image_model_spec(run, 64) == {"kind": "pretrained", "backbone": "efficientnet_lite0",
                                                   "input_size": 64}


def test_saved_matcher_is_reused_only_for_the_same_train_csv_and_image_model(tmp_path):
    train_csv = tmp_path / "train.csv"
    train_csv.write_text("posting_id,title\na,x\n")
    folder = tmp_path / "matcher"
    assert not artefacts.saved_matcher_fits(folder, train_csv, None)
    folder.mkdir()
    spec = {"kind": "pretrained", "backbone": "efficientnet_lite0", "input_size": None}
    info = {"train_sha256": artefacts.file_sha256(train_csv), "image_model": spec}
    (folder / "matcher.json").write_text(json.dumps({"info": info}))
    assert artefacts.saved_matcher_fits(folder, train_csv, spec)
    assert not artefacts.saved_matcher_fits(folder, train_csv, None)
    train_csv.write_text("posting_id,title\na,y\n")
    assert not artefacts.saved_matcher_fits(folder, train_csv, spec)


def test_image_models_and_finetune_no_longer_import_each_other():
    code = ("import sys, samesame.image_models; assert 'samesame.finetune' not in sys.modules, "
            "'image_models imports finetune'")
    subprocess.run([sys.executable, "-c", code], check=True)
