"""Artefact lookup by file (not by metrics.json keys), and when a saved matcher may be reused."""

import json
import subprocess
import sys
from dataclasses import replace
from unittest import mock

import numpy as np
import pandas as pd
import pytest

from samesame.image.comparison import EmbeddingChoice
from samesame.image.embed import run_model
from samesame.image.retrieval import Levers, LeverStudy, Whitening, held_out_f1
from samesame.match.matching import MATCHER_FORMAT
from samesame.run import artefacts
from samesame.run.matcher import options_key, saved_matcher_fits
from samesame.run.runs import Run, RunError
from samesame.run.settings import defaults


def test_missing_artefact_names_the_make_target(tmp_path):
    run = Run(tmp_path / "r")
    with pytest.raises(FileNotFoundError, match="make finetune RUN=r"):
        artefacts.has_finetuned(run)
    (run.path / "models" / "finetune.json").write_text(json.dumps({"rows": [], "best": {}, "skipped": "few images"}))
    with pytest.raises(FileNotFoundError, match="make backbones RUN=r"):
        artefacts.image_model_spec(run, levers=False)
    artefacts.save_backbone_choice(run, {"best": "efficientnet_lite0", "efficientnet_lite0": {"train_mean_f1": 0.6}})
    assert artefacts.image_model_spec(run, 64, levers=False) == {"kind": "pretrained", "backbone": "efficientnet_lite0",
                                                                 "input_size": 64}
    with pytest.raises(RunError, match=r"embedding.json not found: build it with `make metric RUN=r` \(`make fit "
                                       r"RUN=r` and `make submission RUN=r` build what they need\)"):
        artefacts.image_model_spec(run, 64)      # a RunError: the pipeline says it in one line, no traceback
    assert sorted(p.name for p in (run.path / "models").iterdir()) == ["backbone.json", "finetune.json"]


def _choice(levers: Levers, whitening, selection_f1=None, std=0.01) -> EmbeddingChoice:
    study = LeverStudy(pd.DataFrame([{"levers": levers.name, "mean_f1": 0.4, "std_f1": std}]), levers)
    return EmbeddingChoice(study, levers, whitening, {"test_mean_f1": 0.5}, selection_f1)


def test_the_levers_05_kept_become_part_of_the_image_model_and_travel_with_it(tmp_path):
    run = Run(tmp_path / "r")
    (run.path / "models" / "finetune.json").write_text(json.dumps({"rows": [], "best": {}, "skipped": "few images"}))
    artefacts.save_backbone_choice(run, {"best": "random_lite0"})
    images = np.random.default_rng(0).uniform(0, 255, size=(12, 64, 64, 3)).astype(np.float32)
    plain = run_model(artefacts.best_model(run, 64, levers=False).model, images)
    assert artefacts.finetuned_rival(run, None) is None                      # 04 skipped: no rival
    record = artefacts.save_embedding_choice(run, 64, _choice(Levers(flip=True, whiten=6), Whitening.fit(plain, dims=6)),
                                             None)
    assert record["base"] == {"kind": "pretrained", "backbone": "random_lite0", "input_size": 64}
    spec = artefacts.image_model_spec(run, 64)
    assert spec["levers"] == {"flip": True, "whiten": 6} and len(spec["whitening_sha256"]) == 64
    model = artefacts.best_model(run, 64)
    assert model.name == "random_lite0+flip+pca6" and model.dim == 6
    assert run_model(model.model, images).shape == (12, 6)
    with pytest.raises(ValueError, match="missing, or not the whitening"):
        artefacts.backbone_from_spec(spec, None, tmp_path / "elsewhere.npz")
    artefacts.save_backbone_choice(run, {"best": "efficientnet_lite0"})      # 03 picks another backbone: 05 is stale
    with pytest.raises(ValueError, match="rerun 05 \\(make metric RUN=r\\)"):
        artefacts.image_model_spec(run, 64)


def test_a_fine_tuned_model_ships_only_when_it_beats_the_pretrained_one_with_levers_on_its_selection_groups(tmp_path):
    run = Run(tmp_path / "r")
    artefacts.save_backbone_choice(run, {"best": "efficientnet_lite0"})
    spec = {"kind": "finetuned", "model": "m-arcface-e3"}
    rival = artefacts.FinetunedRival(spec, 0.45, np.array([True, False]))
    with mock.patch.object(artefacts, "_candidates", return_value={"pretrained": {}, "finetuned": spec}):
        lost = artefacts.save_embedding_choice(run, None, _choice(Levers(True, 0), None, 0.40), rival)
        assert lost["base"] == spec and lost["levers"] == {"flip": False, "whiten": 0}
        assert lost["comparison"] == {"selection groups": 1, "noise": 0.01, "pretrained + levers": 0.40,
                                      "fine-tuned (04)": 0.45}
        within_noise = artefacts.save_embedding_choice(run, None, _choice(Levers(True, 0), None, 0.443), rival)
        assert within_noise["base"]["kind"] == "pretrained" and within_noise["levers"] == {"flip": True, "whiten": 0}
        won = artefacts.save_embedding_choice(run, None, _choice(Levers(True, 0), None, 0.47), rival)
        assert won["base"]["kind"] == "pretrained"


def test_the_fine_tuned_rival_is_offered_the_kept_whitening_and_ships_with_it_when_that_wins(tmp_path):
    from test_retrieval import _nuisance_data

    run = Run(tmp_path / "r")
    artefacts.save_backbone_choice(run, {"best": "efficientnet_lite0"})
    spec = {"kind": "finetuned", "model": "m-arcface-e3"}
    x, labels = _nuisance_data(0)
    held = labels % 3 == 0                                   # a third of the groups: the selection groups
    ok = np.ones(len(x), bool)
    plain = held_out_f1(Levers(), x, ok, labels, held)       # as 04 would have scored it on its selection groups
    rival = artefacts.FinetunedRival(spec, plain, held, (x, ok), labels)
    f1, whitening = rival.whitened(16)
    assert f1 > plain + 0.05 and whitening.dims == 16          # whitening lifts the nuisance-ridden vectors
    assert artefacts.FinetunedRival(spec, plain, held).whitened(16) is None   # no stored embeddings: as stored
    with mock.patch.object(artefacts, "_candidates", return_value={"pretrained": {}, "finetuned": spec}):
        record = artefacts.save_embedding_choice(run, None, _choice(Levers(False, 16), None, plain + 0.02), rival)
    assert record["base"] == spec and record["levers"] == {"flip": False, "whiten": 16}
    assert record["comparison"]["fine-tuned + PCA whitening 16"] == f1
    np.testing.assert_allclose(Whitening.load(run.path / "models" / "whitening.npz").projection, whitening.projection)


def test_saved_matcher_is_reused_only_for_the_same_format_train_csv_image_model_and_fit_options(tmp_path):
    train_csv = tmp_path / "train.csv"
    train_csv.write_text("posting_id,title\na,x\n")
    folder = tmp_path / "matcher"
    options = defaults().matcher_options
    assert not saved_matcher_fits(folder, train_csv, None, options)
    folder.mkdir()
    spec = {"kind": "pretrained", "backbone": "efficientnet_lite0", "input_size": None}
    info = {"train_sha256": artefacts.file_sha256(train_csv), "image_model": spec, "fit_options": options_key(options)}
    (folder / "matcher.json").write_text(json.dumps({"format": 1, "info": info}))
    assert not saved_matcher_fits(folder, train_csv, spec, options)      # an older format: refit
    (folder / "matcher.json").write_text(json.dumps({"format": MATCHER_FORMAT, "info": info}))
    assert saved_matcher_fits(folder, train_csv, spec, options)
    assert not saved_matcher_fits(folder, train_csv, None, options)
    other = options.changed(title_model=replace(options.title_model, epochs=2))   # another title model
    assert not saved_matcher_fits(folder, train_csv, spec, other)
    assert not saved_matcher_fits(folder, train_csv, spec, options.changed(min2=False))   # another fusion option
    train_csv.write_text("posting_id,title\na,y\n")
    assert not saved_matcher_fits(folder, train_csv, spec, options)


def test_image_models_and_finetune_no_longer_import_each_other():
    code = ("import sys, samesame.image.comparison; assert 'samesame.image.finetune' not in sys.modules, "
            "'image.comparison imports finetune'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_groups_a_fine_tuned_image_model_trained_on_are_read_from_04s_record(tmp_path):
    run = Run(tmp_path / "r")
    finetune = run.path / "models" / "finetune.json"
    finetune.write_text(json.dumps({"rows": [], "best": {"epochs": 3}, "info": {"seed": 0}}))
    assert artefacts.image_trained_groups(run, None) == []
    assert artefacts.image_trained_groups(run, {"kind": "pretrained", "backbone": "efficientnet_lite0"}) == []
    with pytest.raises(ValueError, match="predates the record of the groups it trained on: rerun 04"):
        artefacts.image_trained_groups(run, {"kind": "finetuned"})
    finetune.write_text(json.dumps({"rows": [], "best": {"epochs": 3}, "info": {"fit_groups": [7, 2**62]}}))
    assert artefacts.image_trained_groups(run, {"kind": "finetuned"}) == [7, 2**62]
