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


def test_saved_matcher_is_reused_only_for_the_same_format_train_csv_image_model_and_fit_options(tmp_path):
    train_csv = tmp_path / "train.csv"
    train_csv.write_text("posting_id,title\na,x\n")
    folder = tmp_path / "matcher"
    assert not artefacts.saved_matcher_fits(folder, train_csv, None)
    folder.mkdir()
    spec = {"kind": "pretrained", "backbone": "efficientnet_lite0", "input_size": None}
    options = artefacts.fit_options(0, {"epochs": 1}, {"min2": True}, {"step_folds": 3})
    info = {"train_sha256": artefacts.file_sha256(train_csv), "image_model": spec,
            "fit_options": artefacts.options_key(options)}
    (folder / "matcher.json").write_text(json.dumps({"format": 1, "info": info}))
    assert not artefacts.saved_matcher_fits(folder, train_csv, spec, options)      # an older format: refit
    (folder / "matcher.json").write_text(json.dumps({"format": artefacts.MATCHER_FORMAT, "info": info}))
    assert artefacts.saved_matcher_fits(folder, train_csv, spec, options)
    assert not artefacts.saved_matcher_fits(folder, train_csv, None, options)
    other = artefacts.fit_options(0, {"epochs": 2}, {"min2": True}, {"step_folds": 3})   # another title model
    assert not artefacts.saved_matcher_fits(folder, train_csv, spec, other)
    train_csv.write_text("posting_id,title\na,y\n")
    assert not artefacts.saved_matcher_fits(folder, train_csv, spec, options)


def test_image_models_and_finetune_no_longer_import_each_other():
    code = ("import sys, samesame.image_models; assert 'samesame.finetune' not in sys.modules, "
            "'image_models imports finetune'")
    subprocess.run([sys.executable, "-c", code], check=True)
