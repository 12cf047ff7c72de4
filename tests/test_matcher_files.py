"""A saved matcher folder with a missing, damaged or edited file fails on load with that file's name and the fix."""

import dataclasses
import json
import os
import re
import shutil
import time

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from samesame.core.files import STALE_SECONDS
from samesame.match.matching import MATCHER_FORMAT, Matcher
from samesame.match.pairs import PairClassifier
from samesame.match.recipe import PairStep, Recipe
from samesame.match.trees import BoostedTrees
from samesame.run.settings import defaults
from samesame.text.title_model import BrokenEncoderError

FEATURES = ["fused", "tfidf"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A matcher with a (tiny, really trained) pair classifier and no title encoder, saved once."""
    rng = np.random.default_rng(0)
    x = rng.random((40, len(FEATURES)))
    model = HistGradientBoostingClassifier(max_iter=2).fit(x, x[:, 0] > 0.5)
    matcher = Matcher(Recipe({"tfidf": 1.0}, 0.5, pair_classifier=PairStep(0.5, 0.2, 0.1)), None, defaults().tfidf,
                      pair_classifier=PairClassifier(feature_names=FEATURES, trees=BoostedTrees.from_sklearn([model])))
    return matcher.save(tmp_path_factory.mktemp("saved") / "matcher")


@pytest.fixture
def folder(saved, tmp_path):
    """A fresh copy of the saved matcher to damage."""
    return shutil.copytree(saved, tmp_path / "matcher")


def _edit_meta(folder, change):
    meta = json.loads((folder / "matcher.json").read_text())
    change(meta)
    (folder / "matcher.json").write_text(json.dumps(meta))


def _raises(error, path, message):
    return pytest.raises(error, match=f"{re.escape(str(path))}:? {message}")


def test_a_whole_folder_loads(folder):
    matcher = Matcher.load(folder)
    assert matcher.recipe.pair_classifier == PairStep(0.5, 0.2, 0.1) and matcher.encoder is None
    assert matcher.pair_classifier.feature_names == FEATURES and matcher.pair_classifier.trees.n_models == 1

CONFIG = json.dumps(dataclasses.asdict(defaults().title_encoder))   # a valid title encoder config.json


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "matcher.json").unlink(), r"not found: fit and save a matcher first \(make fit\)"),
    (lambda f: (f / "matcher.json").write_text('{"format": 2,'), r"is not valid JSON \(.*line 1.*refit and save"),
    (lambda f: (f / "matcher.json").write_text("[2]"),
     rf"matcher format \[2\], this samesame reads {MATCHER_FORMAT}; refit and save"),
    (lambda f: _edit_meta(f, lambda m: m.update(format=1)), f"matcher format 1, this samesame reads {MATCHER_FORMAT}"),
    (lambda f: _edit_meta(f, lambda m: m.pop("k")), r"is not what Matcher.save writes \(KeyError: 'k'\); refit"),
    (lambda f: _edit_meta(f, lambda m: m.update(k="50")),
     r"is not what Matcher.save writes \(ValueError: k = '50', expected an integer >= 1\)"),
    (lambda f: _edit_meta(f, lambda m: m.update(title_encoder="no")), "is not what .*expected true/false flags"),
    (lambda f: _edit_meta(f, lambda m: m.update(tfidf_config=[1])), r"is not what Matcher.save writes \(TypeError"),
    (lambda f: _edit_meta(f, lambda m: m["tfidf_config"].update(ngram=3)), "is not what Matcher.save writes"),
    (lambda f: _edit_meta(f, lambda m: m["tfidf_config"].update(binary="no")),   # was sklearn's error, no file named
     r"is not what Matcher.save writes \(ValueError: tfidf_config.binary = 'no' is str: expected true or false\)"),
    (lambda f: _edit_meta(f, lambda m: m["tfidf_config"].update(word_weight=0)),
     r"is not what Matcher.save writes \(ValueError: TfidfConfig needs word_weight > 0 or char_weight > 0"),
], ids=["missing", "not-json", "a-list", "old-format", "no-k", "k-text", "flag-text", "tfidf-list", "tfidf-key",
        "tfidf-binary-text", "tfidf-no-part"])
def test_a_bad_matcher_json_names_itself_and_the_fix(folder, damage, message):
    damage(folder)
    with _raises((FileNotFoundError, ValueError), folder / "matcher.json", message):
        Matcher.load(folder)


@pytest.mark.parametrize("damage, error, message", [
    (lambda f: (f / "recipe.json").unlink(), FileNotFoundError, "not found: refit with make fit"),
    (lambda f: (f / "recipe.json").write_text("{"), ValueError, r"is not valid JSON \(.*\): refit with make fit"),
    (lambda f: (f / "recipe.json").write_text('{"weights": {"tfidf": 1}, "threshold": 0.5, "unit_filter": "false",'
                                              ' "pair_classifier": {"threshold": 0.5}}'),
     ValueError, "recipe key 'unit_filter' = \"false\" is not valid"),
])
def test_a_bad_recipe_json_names_itself(folder, damage, error, message):
    damage(folder)
    with _raises(error, folder / "recipe.json", message):
        Matcher.load(folder)


def test_matcher_json_and_recipe_json_from_different_fits_are_refused(folder):
    _edit_meta(folder, lambda m: m.update(pair_classifier=False))
    with pytest.raises(ValueError, match=f"{re.escape(str(folder / 'matcher.json'))} says pair_classifier: false, but "
                                         f"{re.escape(str(folder / 'recipe.json'))} has a pair_classifier step"):
        Matcher.load(folder)


@pytest.mark.parametrize("damage, path, message", [
    (lambda f: None, "title_encoder", r"cannot load the saved title encoder \(the folder does not exist\)"),
    (lambda f: (f / "title_encoder").mkdir(), "title_encoder/config.json", r"cannot load .*FileNotFoundError"),
    (lambda f: (f / "title_encoder").mkdir() or (f / "title_encoder" / "config.json").write_text(CONFIG),
     "title_encoder/training.json", r"cannot load .*FileNotFoundError.*Refit it \(make fit\)"),
], ids=["no-folder", "empty-folder", "no-training"])
def test_a_missing_or_broken_title_encoder_folder_names_the_file(folder, damage, path, message):
    _edit_meta(folder, lambda m: m.update(title_encoder=True))
    damage(folder)
    with _raises(BrokenEncoderError, folder / path, message):
        Matcher.load(folder)


@pytest.mark.parametrize("damage, file, error, message", [
    (lambda f: shutil.rmtree(f), "pair_classifier.json", FileNotFoundError, "not found: the saved pair classifier"),
    (lambda f: (f / "models.npz").unlink(), "models.npz", FileNotFoundError, "not found: .*refit the matcher"),
    (lambda f: (f / "models.npz").write_bytes((f / "models.npz").read_bytes()[:50]), "models.npz",
     ValueError, r"is not an .npz of plain arrays \(.*\); refit the matcher \(make fit\)"),
    (lambda f: (f / "models.npz").write_bytes(__import__("pickle").dumps([1])), "models.npz",
     ValueError, r"is not an .npz of plain arrays \(ValueError: .*pickled"),
    (lambda f: (f / "models.npz").unlink() or (f / "models.joblib").write_bytes(b"pickle"), "models.joblib",
     ValueError, "was saved by an older version in a format that can run code .*; refit the matcher"),
    (lambda f: (f / "pair_classifier.json").write_text("{}"), "pair_classifier.json",
     ValueError, r"is not what PairClassifier.save writes \(KeyError: 'max_iter'\)"),
    (lambda f: (f / "pair_classifier.json").write_text('"text"'), "pair_classifier.json",
     ValueError, r"is not what PairClassifier.save writes \(TypeError"),
], ids=["no-folder", "no-models", "truncated-models", "a-pickle", "old-joblib", "no-settings", "a-string"])
def test_a_broken_pair_classifier_folder_names_the_file(folder, damage, file, error, message):
    damage(folder / "pair_classifier")
    with _raises(error, folder / "pair_classifier" / file, message):
        Matcher.load(folder)


def test_a_half_written_tmp_sibling_does_not_break_the_next_save(saved, tmp_path):
    """A save killed midway leaves a hidden ``.matcher.<random>.tmp``: the next save writes its own, replaces the
    folder whole, and clears the stray once it is stale."""
    matcher = Matcher.load(saved)
    folder = tmp_path / "matcher"
    stale = tmp_path / ".matcher.k1ll3d.tmp"
    (stale / "title_encoder").mkdir(parents=True)
    (stale / "recipe.json").write_text("{")
    (stale / "title_encoder" / "upper.weights.h5").write_bytes(bytes(96))
    os.utime(stale, (time.time() - STALE_SECONDS - 1,) * 2)
    matcher.save(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["matcher"]
    assert sorted(p.name for p in folder.iterdir()) == ["matcher.json", "pair_classifier", "recipe.json"]
    assert Matcher.load(folder).recipe == matcher.recipe


def test_a_title_model_outside_the_registry_names_the_kinds_and_the_fix(folder):
    _edit_meta(folder, lambda m: m.update(title_encoder=True, title_model="bert"))
    with pytest.raises(ValueError, match=r"matcher.json: title_model 'bert' is none of \['e5-small-arcface'\]; refit"):
        Matcher.load(folder)


def test_title_encoder_false_for_a_recipe_that_reads_the_title_is_refused(folder):
    """matcher.json edited to title_encoder: false used to predict without the title signal, silently."""
    recipe = json.loads((folder / "recipe.json").read_text())
    recipe["weights"]["title"] = 0.5
    (folder / "recipe.json").write_text(json.dumps(recipe))
    with _raises(ValueError, folder / "matcher.json", "says title_encoder: false, but the matcher .* reads the learned "
                                                      "title.*refit"):
        Matcher.load(folder)
