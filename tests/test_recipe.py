"""A hand-edited recipe.json is checked value by value: a bad one names the file, the key, the value and the fix."""

import json
import re

import pytest

from samesame.match.recipe import Blend, PairStep, Recipe

GOOD = {"weights": {"tfidf": 1.0, "phash": 0.25}, "threshold": 0.61, "union": {"phash": 0.9}, "unit_filter": True,
        "min2": 0.3, "blend": {"weights": {"tfidf": 1.0}, "threshold": 0.7, "top": 8},
        "pair_classifier": {"threshold": 0.42, "min2": 0.11, "floor": 0.2}}


def _edited(key: str, value) -> dict:
    """GOOD with one (dotted) key set to value."""
    d = json.loads(json.dumps(GOOD))
    *path, last = key.split(".")
    target = d
    for part in path:
        target = target[part]
    target[last] = value
    return d


def test_a_good_recipe_file_loads_exactly(tmp_path):
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(GOOD))
    recipe = Recipe.load(path)
    assert recipe == Recipe({"tfidf": 1.0, "phash": 0.25}, 0.61, {"phash": 0.9}, True, 0.3,
                            Blend({"tfidf": 1.0}, 0.7, 8), PairStep(0.42, 0.11, 0.2))
    assert Recipe.load(recipe.save(tmp_path / "again.json")) == recipe
    assert Recipe.from_dict({"weights": {"tfidf": 1.0}, "threshold": 0.5, "union": None}).union == {}


def test_a_mutual_blend_is_saved_named_and_read_back(tmp_path):
    recipe = Recipe.from_dict({**GOOD, "blend": {"weights": {"tfidf": 1.0}, "threshold": 0.7, "mutual": True}})
    assert recipe.blend == Blend({"tfidf": 1.0}, 0.7, 8, True)
    assert recipe.name.startswith("mutual_blend(")
    assert Recipe.load(recipe.save(tmp_path / "r.json")) == recipe
    assert Recipe.from_dict(GOOD).blend.mutual is False       # recipes saved before the option read as before


@pytest.mark.parametrize("key, value, expected", [
    ("unit_filter", "false", "true or false"),
    ("unit_filter", 1, "true or false"),
    ("threshold", float("nan"), r"a number in \(0, 1\]: at 0 or below, every candidate pair would match"),
    ("threshold", -3, r"a number in \(0, 1\]: at 0 or below, every candidate pair would match"),
    ("threshold", -0.5, r"a number in \(0, 1\]: at 0 or below, every candidate pair would match"),      # within [-1, 1], yet every listing matched every other
    ("threshold", 0, r"a number in \(0, 1\]: at 0 or below, every candidate pair would match"),
    ("threshold", "0.5", r"a number in \(0, 1\]: at 0 or below, every candidate pair would match"),
    ("min2", float("inf"), r"a finite number in \[-1, 1\]"),
    ("union.phash", 1.5, r"a number in \(0, 1\]: at 0 or below, every candidate pair would match"),
    ("union.phash", -0.2, r"a number in \(0, 1\]: at 0 or below, every candidate pair would match"),
    ("weights.tfidf", -1.0, "a finite number in \\[0, inf\\]"),
    ("weights", {"tfidf": 0, "phash": 0.0}, "at least one weight > 0"),
    ("weights", {}, "at least one weight > 0"),
    ("blend.top", -3, "an integer >= 1"),
    ("blend.top", 2.5, "an integer >= 1"),
    ("blend.threshold", float("nan"), "a finite number"),
    ("pair_classifier.threshold", 1.2, r"a number in \(0, 1\]: at 0 or below, every candidate pair would match"),
    ("pair_classifier.threshold", 0.0, r"a number in \(0, 1\]: at 0 or below, every candidate pair would match"),
    ("pair_classifier.min2", -0.1, r"a finite number in \[0, 1\]"),
    ("pair_classifier.floor", float("nan"), "a finite number"),
    ("blend", [1], "a JSON object"),
    ("blend.mutual", "yes", "true or false"),
])
def test_a_bad_value_names_the_file_the_key_the_value_and_the_fix(tmp_path, key, value, expected):
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(_edited(key, value)))
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}: recipe key '{re.escape(key)}' = "
                                         f"{re.escape(json.dumps(value))} is not valid: expected {expected}") as err:
        Recipe.load(path)
    assert str(err.value).endswith(f"refit with make fit, or correct {key} in {path}")


@pytest.mark.parametrize("key, value, message", [
    ("weights.bm25", 1.0, r"recipe key 'weights' has unknown signals \['bm25'\]"),
    ("union.image_phash", 0.9, r"recipe key 'union' has unknown signals \['image_phash'\]"),
    ("blend.weights.text", 1.0, r"recipe key 'blend.weights' has unknown signals \['text'\]"),
    ("rerank", {}, r"the recipe has unknown recipe keys \['rerank'\]"),
    ("pair_classifier.cut", 0.1, r"recipe key 'pair_classifier' has unknown recipe keys \['cut'\]"),
])
def test_unknown_signals_and_keys_are_refused(tmp_path, key, value, message):
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(_edited(key, value)))
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}: {message}.*refit with make fit"):
        Recipe.load(path)


@pytest.mark.parametrize("text, message", [
    ('{"weights": {"tfidf": 1.0},', r"is not valid JSON \(Expecting property name enclosed in double quotes at line 1"),
    ("[1, 2]", "the recipe = \\[1, 2\\] is not valid: expected a JSON object"),
    ("null", "the recipe = null is not valid: expected a JSON object"),
    ('{"weights": {"tfidf": 1.0}}', r"the recipe lacks the keys \['threshold'\]"),
    ('{"weights": {"tfidf": 1.0}, "threshold": 0.5, "note": "caf\xe9"}', r"is not UTF-8 text \(byte 58\)"),
])
def test_a_broken_file_names_itself_and_the_fix(tmp_path, text, message):
    path = tmp_path / "recipe.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}:? {message}.*refit with make fit, or correct"):
        Recipe.load(path)


def test_the_pair_rule_keeps_its_empty_weights():
    """PairStep.rule() applies thresholds to probabilities: no signal weights, built in code, never checked."""
    rule = PairStep(0.4, 0.2).rule()
    assert rule.weights == {} and Recipe.from_dict(rule) is rule
