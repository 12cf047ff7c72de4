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
