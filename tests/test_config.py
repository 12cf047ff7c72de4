"""One config: base.yaml holds every knob, profiles override a few, and a key that configures nothing stops the run."""

import ast
import shutil
import subprocess

import pytest
import yaml

from samesame.config import (CONFIGS_DIR, PIPELINE_PARAMS, REPO, ConfigError, declared_parameters, load_profile,
                             merge)


@pytest.fixture
def configs(tmp_path):
    """A copy of configs/ to misspell things in."""
    shutil.copytree(CONFIGS_DIR, tmp_path / "configs")
    return tmp_path / "configs"


def _edit(path, change):
    config = yaml.safe_load(path.read_text()) or {}
    change(config)
    path.write_text(yaml.safe_dump(config))


def test_every_profile_loads_and_sample_is_the_base():
    base = load_profile("base")
    for profile in ("sample", "tiny", "kaggle", "gpu"):
        assert set(load_profile(profile)["params"]) == set(base["params"])
    assert load_profile("sample") == base
    tiny = load_profile("tiny")
    assert tiny["data_dir"] == "data/tiny" and tiny["params"]["finetune_epochs"] == [1, 2]
    assert tiny["params"]["title_encoder"] == {**base["params"]["title_encoder"], "train_layers": 1, "epochs": 2,
                                               "batch_size": 16}   # nested overrides merge key by key


def test_split_seed_and_train_seed_are_separate_knobs():
    params = load_profile("base")["params"]
    assert {"split_seed", "train_seed"} <= set(params) and "seed" not in params["title_encoder"]


def test_merge_is_recursive_for_mappings_only():
    base = {"a": {"x": 1, "y": 2}, "b": [1, 2]}
    assert merge(base, {"a": {"y": 3}, "b": [5]}) == {"a": {"x": 1, "y": 3}, "b": [5]}


def test_a_misspelt_profile_key_names_the_key_the_file_and_the_likely_spelling(configs):
    _edit(configs / "sample.yaml", lambda c: c.setdefault("params", {}).update(finetune_epoch=[3]))
    with pytest.raises(ConfigError) as err:
        load_profile("sample", configs)
    message = str(err.value)
    assert str(configs / "sample.yaml") in message and "unknown key 'params.finetune_epoch'" in message
    assert "did you mean 'params.finetune_epochs'" in message


def test_nested_keys_are_checked_and_mappings_stay_mappings(configs):
    _edit(configs / "tiny.yaml", lambda c: c["params"].update(title_encoder={"epoch": 2}))
    with pytest.raises(ConfigError, match=r"unknown key 'params.title_encoder.epoch' \(did you mean 'params.title_encoder.epochs'"):
        load_profile("tiny", configs)
    _edit(configs / "tiny.yaml", lambda c: c["params"].update(title_encoder=3))
    with pytest.raises(ConfigError, match="'params.title_encoder' must be a mapping"):
        load_profile("tiny", configs)
    _edit(configs / "kaggle.yaml", lambda c: c.update(parms={}))
    with pytest.raises(ConfigError, match="kaggle.yaml: unknown key 'parms' \\(did you mean 'params'"):
        load_profile("kaggle", configs)


def test_a_base_key_no_notebook_declares_stops_the_run(configs):
    _edit(configs / "base.yaml", lambda c: c["params"].update(pair_threshold=0.5))
    with pytest.raises(ConfigError, match="base.yaml: params.pair_threshold is declared by no notebook"):
        load_profile("sample", configs)


def test_unknown_profile_lists_the_profiles(configs):
    with pytest.raises(ConfigError, match=r"unknown profile 'smaple'.*'sample'"):
        load_profile("smaple", configs)


def test_notebook_defaults_are_the_base_config():
    """A notebook run by hand in Jupyter runs the sample profile: its defaults cannot drift from base.yaml."""
    import papermill as pm

    base = load_profile("base")["params"]
    declared = declared_parameters()
    assert set(declared) - set(PIPELINE_PARAMS) == set(base)
    for nb in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for name, info in pm.inspect_notebook(str(nb)).items():
            if name not in PIPELINE_PARAMS:
                assert ast.literal_eval(info["default"]) == base[name], f"{nb.name}: {name}"


def test_make_all_with_a_misspelt_key_fails_before_running_anything(tmp_path):
    profile = tmp_path / "sample.yaml"
    profile.write_text("params:\n  finetune_epoch: [3]\n")
    done = subprocess.run(["make", "-o", ".venv/.installed", "all", f"PROFILE={profile}", "RUN=typo-test"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert f"config error: {profile}: unknown key 'params.finetune_epoch' (did you mean 'params.finetune_epochs'?)" in done.stderr
    assert not (REPO / "runs" / "typo-test").exists()


@pytest.mark.parametrize("profile, change, message", [
    ("tiny", lambda c: c["params"].update(n_gallery_groups=-1), "params.n_gallery_groups = -1 is not valid: "
                                                                "expected an integer >= 1"),
    ("tiny", lambda c: c["params"].update(n_gallery_groups="two"), "params.n_gallery_groups = 'two' is str: "
                                                                   "expected an integer, like 4 in "),
    ("tiny", lambda c: c["params"].update(n_gallery_groups=True), "params.n_gallery_groups = True is bool"),
    ("tiny", lambda c: c["params"].update(n_gallery_groups=None), "params.n_gallery_groups = None is null"),
    ("tiny", lambda c: c["params"].update(phash_max_threshold=-5), "params.phash_max_threshold = -5 is not valid: "
                                                                   "expected a Hamming distance in 0..64"),
    ("gpu", lambda c: c["params"].update(fusion_grid={"thresholds": [0.95, 0.2, 0.01]}),
     r"params.fusion_grid.thresholds = \[0.95, 0.2, 0.01\] is not valid: expected \[start, stop, step\] with -1 <="),
    ("gpu", lambda c: c["params"].update(fusion_grid={"probabilities": [0.05, 0.95, 0]}),
     r"params.fusion_grid.probabilities = \[0.05, 0.95, 0\] is not valid"),
    ("gpu", lambda c: c["params"].update(fusion_grid={"thresholds": [0.2, "0.9", 0.01]}),
     r"params.fusion_grid.thresholds = \[0.2, '0.9', 0.01\] holds '0.9' \(str\): expected every item to be a number"),
    ("gpu", lambda c: c["params"].update(fusion_grid={"pair_trees": "twenty"}),
     "params.fusion_grid.pair_trees = 'twenty' is str: expected an integer, like 300"),
    ("gpu", lambda c: c["params"]["title_encoder"].update(epochs="2"),
     "params.title_encoder.epochs = '2' is str: expected an integer, like 6"),
    ("gpu", lambda c: c["params"]["title_encoder"].update(learning_rate="5e-5"),
     r"params.title_encoder.learning_rate = '5e-5' is str \(YAML reads a number like 5e-5 as text: write 5.0e-5\)"),
    ("gpu", lambda c: c["params"]["title_encoder"].update(learning_rate=float("nan")),
     "params.title_encoder.learning_rate = nan is not valid: expected a number > 0"),
    ("gpu", lambda c: c["params"]["title_encoder"].update(train_layers=13),
     r"params.title_encoder.train_layers = 13 is not valid: expected 0..12 \(e5-small has 12 layers\)"),
    ("kaggle", lambda c: c["params"].update(split_test_fraction=1), "params.split_test_fraction = 1 is not valid: "
                                                                    r"expected a number in \(0, 1\)"),
    ("kaggle", lambda c: c["params"].update(train_seed=-1),
     "params.train_seed = -1 is not valid: expected an integer >= 0"),
    ("kaggle", lambda c: c["params"].update(image_size="big"), "params.image_size = 'big' is not valid: expected an "
                                                               "integer >= 1"),
    ("kaggle", lambda c: c["params"].update(fusion_tuning={"blend": "yes"}),
     "params.fusion_tuning.blend = 'yes' is not valid: expected true, false or null"),
    ("kaggle", lambda c: c["params"].update(finetune_epochs=[3, 0]), r"params.finetune_epochs = \[3, 0\] is not valid"),
    ("kaggle", lambda c: c["params"].update(backbones="vgg16"), "params.backbones = 'vgg16' is str: expected a list"),
    ("kaggle", lambda c: c["params"].update(progress="false"),
     "params.progress = 'false' is str: expected true or false"),
    ("tiny", lambda c: c["sample"].update(n_groups=0), "sample.n_groups = 0 is not valid: expected an integer >= 1"),
])
def test_a_bad_value_stops_the_run_naming_the_file_the_key_and_what_is_expected(configs, profile, change, message):
    path = configs / f"{profile}.yaml"
    _edit(path, change)
    with pytest.raises(ConfigError, match=f"{path}: {message}") as err:
        load_profile(profile, configs)
    assert str(err.value).endswith(f" in {path}.")


def test_null_stands_where_base_has_null_and_an_int_where_it_has_a_float(configs):
    _edit(configs / "tiny.yaml", lambda c: c["params"].update(image_size=None, finetune_lr=1, fusion_tuning={
        "union_phash": False, "blend": True, "unit_filter": None}, fusion_grid={"thresholds": [0, 1, 1]}))
    params = load_profile("tiny", configs)["params"]
    assert params["image_size"] is None and params["finetune_lr"] == 1 and params["fusion_tuning"]["blend"] is True


def test_base_yaml_itself_is_checked(configs):
    _edit(configs / "base.yaml", lambda c: c["params"]["fusion_grid"].update(blend_top=0))
    with pytest.raises(ConfigError, match=f"{configs / 'base.yaml'}: params.fusion_grid.blend_top = 0 is not valid"):
        load_profile("sample", configs)


def test_every_number_and_list_in_base_has_a_value_check():
    """A new knob gets its range in config.LIMITS, or a bad value of it would fail deep inside a notebook."""
    from fnmatch import fnmatchcase

    from samesame.config import LIMITS

    def leaves(d, prefix=""):
        for key, value in d.items():
            yield from leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [(f"{prefix}{key}", value)]

    base = load_profile("base")
    unchecked = [name for name, value in leaves(base) if (isinstance(value, (int, float, list)) or value is None)
                 and not isinstance(value, bool) and not any(fnmatchcase(name, p) for p, _, _ in LIMITS)]
    assert unchecked == []
