"""One settings tree: base.yaml holds every value once, profiles override a few, every key and value is checked
before anything runs, and no notebook or library default keeps a copy."""

import dataclasses
import json
import shutil
import subprocess
import sys
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
import yaml

from samesame.run import settings
from samesame.run.pipeline import PARAMETERS
from samesame.run.settings import CONFIGS_DIR, LIMITS, REPO, ConfigError, Settings, defaults, load, merge


@pytest.fixture
def configs(tmp_path):
    """A copy of configs/ to misspell things in."""
    shutil.copytree(CONFIGS_DIR, tmp_path / "configs")
    return tmp_path / "configs"


def _edit(path, change):
    config = yaml.safe_load(path.read_text()) or {}
    change(config)
    path.write_text(yaml.safe_dump(config))


def _settings_classes(cls=Settings):
    """Every dataclass of the tree, the root included."""
    yield cls
    for f in dataclasses.fields(cls):
        kind = settings._fields(cls, "").get(f.name)
        if dataclasses.is_dataclass(kind):
            yield from _settings_classes(kind)


def test_every_profile_loads_and_sample_is_the_base():
    base = load("base")
    assert load("sample") == base == defaults()
    for profile in ("tiny", "kaggle", "gpu"):
        assert isinstance(load(profile), Settings)
    tiny = load("tiny")
    assert tiny.data_dir == REPO / "data" / "tiny" and tiny.finetune.epochs == (1, 2)
    assert tiny.title_encoder == dataclasses.replace(base.title_encoder, train_layers=1, epochs=2, batch_size=16)
    assert tiny.fusion == base.fusion                  # nested overrides merge key by key


def test_paths_are_anchored_at_the_repository_root_and_data_dir_replaces_the_profiles():
    cfg = defaults()
    assert cfg.cache_dir == REPO / ".cache" / "embeddings" and cfg.data_dir == REPO / "data" / "sample"
    assert load("tiny", data_dir="/somewhere/else").data_dir == Path("/somewhere/else")


def test_one_seed_trains_everything_and_the_split_has_its_own():
    cfg = load("tiny", {"train_seed": 7})
    assert cfg.title_encoder.seed == 7 and cfg.matcher_options.seed == 7 and cfg.split.seed == 0


def test_the_tree_holds_no_default_of_its_own():
    """base.yaml is the one home of every value: a default in a dataclass would be a second copy that drifts."""
    for cls in _settings_classes():
        with_default = [f.name for f in dataclasses.fields(cls)
                        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
        assert with_default == [], cls.__name__


def test_notebooks_declare_only_the_profile_and_hold_no_setting():
    """A notebook's parameters cell names the profile, its overrides and the folders; the settings come from
    configs/ (the pipeline passes the same profile), so no value is copied into a notebook."""
    import papermill as pm

    for nb in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        declared = pm.inspect_notebook(str(nb))
        assert set(declared) == {*PARAMETERS, "overrides"}, nb.name
        assert declared["profile"]["default"] == '"sample"' and declared["overrides"]["default"] == "{}", nb.name


def test_the_settings_do_not_read_the_notebooks():
    code = "import sys, samesame.run.settings; assert 'papermill' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_merge_is_recursive_for_mappings_only():
    base = {"a": {"x": 1, "y": 2}, "b": [1, 2]}
    assert merge(base, {"a": {"y": 3}, "b": [5]}) == {"a": {"x": 1, "y": 3}, "b": [5]}


def test_a_misspelt_profile_key_names_the_key_the_file_and_the_likely_spelling(configs):
    _edit(configs / "sample.yaml", lambda c: c.setdefault("finetune", {}).update(epoch=[3]))
    with pytest.raises(ConfigError) as err:
        load("sample", configs_dir=configs)
    message = str(err.value)
    assert str(configs / "sample.yaml") in message and "unknown key 'finetune.epoch'" in message
    assert "did you mean 'finetune.epochs'" in message


def test_nested_keys_are_checked_and_mappings_stay_mappings(configs):
    _edit(configs / "tiny.yaml", lambda c: c.update(title_encoder={"epoch": 2}))
    with pytest.raises(ConfigError, match=r"unknown key 'title_encoder.epoch' \(did you mean 'title_encoder.epochs'"):
        load("tiny", configs_dir=configs)
    _edit(configs / "tiny.yaml", lambda c: c.update(title_encoder=3))
    with pytest.raises(ConfigError, match="'title_encoder' must be a mapping"):
        load("tiny", configs_dir=configs)
    _edit(configs / "kaggle.yaml", lambda c: c.update(fusoin={}))
    with pytest.raises(ConfigError, match="kaggle.yaml: unknown key 'fusoin' \\(did you mean 'fusion'"):
        load("kaggle", configs_dir=configs)


def test_a_derived_setting_cannot_be_written(configs):
    _edit(configs / "tiny.yaml", lambda c: c["title_encoder"].update(seed=3))
    with pytest.raises(ConfigError, match="unknown key 'title_encoder.seed'"):
        load("tiny", configs_dir=configs)


def test_notebook_overrides_are_checked_and_applied():
    assert load("tiny", {"title_encoder": {"epochs": 3}}).title_encoder.epochs == 3
    with pytest.raises(ConfigError, match="the notebook's overrides: unknown key 'title_encoder.epoch'"):
        load("tiny", {"title_encoder": {"epoch": 3}})
    with pytest.raises(ConfigError, match="the notebook's overrides: fusion.min2 = 'no' is str"):
        load("tiny", {"fusion": {"min2": "no"}})


def test_base_yaml_must_hold_every_setting(configs):
    _edit(configs / "base.yaml", lambda c: c["tuning"].pop("blend_top"))
    with pytest.raises(ConfigError, match=r"base.yaml: tuning. lacks \['tuning.blend_top'\]"):
        load("sample", configs_dir=configs)


def test_unknown_profile_lists_the_profiles(configs):
    with pytest.raises(ConfigError, match=r"unknown profile 'smaple'.*'sample'"):
        load("smaple", configs_dir=configs)


def test_make_all_with_a_misspelt_key_fails_before_running_anything(tmp_path):
    profile = tmp_path / "sample.yaml"
    profile.write_text("finetune:\n  epoch: [3]\n")
    done = subprocess.run(["make", "-o", ".venv/.installed", "all", f"PROFILE={profile}", "RUN=typo-test"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert f"config error: {profile}: unknown key 'finetune.epoch' (did you mean 'finetune.epochs'?)" in done.stderr
    assert not (REPO / "runs" / "typo-test").exists()


@pytest.mark.parametrize("profile, change, message", [
    ("tiny", lambda c: c["study"].update(n_gallery_groups=-1), "study.n_gallery_groups = -1 is not valid: "
                                                               "expected an integer >= 1"),
    ("tiny", lambda c: c["study"].update(n_gallery_groups="two"), "study.n_gallery_groups = 'two' is str: "
                                                                  "expected an integer, like 4 in "),
    ("tiny", lambda c: c["study"].update(n_gallery_groups=True), "study.n_gallery_groups = True is bool"),
    ("tiny", lambda c: c["study"].update(n_gallery_groups=None), "study.n_gallery_groups = None is null"),
    ("tiny", lambda c: c["study"].update(phash_max_threshold=-5), "study.phash_max_threshold = -5 is not valid: "
                                                                  "expected a Hamming distance in 0..64"),
    ("gpu", lambda c: c.update(tuning={"thresholds": [0.95, 0.2, 0.01]}),
     r"tuning.thresholds = \[0.95, 0.2, 0.01\] is not valid: expected \[start, stop, step\] with 0.001 <="),
    ("gpu", lambda c: c.update(tuning={"thresholds": [-0.5, 0.9, 0.01]}),     # every listing would match every other
     r"tuning.thresholds = \[-0.5, 0.9, 0.01\] is not valid: .*at 0 every candidate pair matches"),
    ("gpu", lambda c: c.update(tuning={"phash_max_bits": 40}), r"tuning.phash_max_bits = 40 is not valid: .*0..31"),
    ("gpu", lambda c: c.update(tuning={"probabilities": [0.05, 0.95, 0]}),
     r"tuning.probabilities = \[0.05, 0.95, 0\] is not valid"),
    ("gpu", lambda c: c.update(tuning={"thresholds": [0.2, "0.9", 0.01]}),
     r"tuning.thresholds = \[0.2, '0.9', 0.01\] holds '0.9' \(str\): expected every item to be a number"),
    ("gpu", lambda c: c.update(tuning={"thresholds": [0.2, 0.9]}), r"tuning.thresholds = \[0.2, 0.9\] has 2 items"),
    ("gpu", lambda c: c.update(tuning={"pair_trees": "twenty"}),
     "tuning.pair_trees = 'twenty' is str: expected an integer, like 300"),
    ("gpu", lambda c: c["title_encoder"].update(epochs="2"), "title_encoder.epochs = '2' is str: expected an integer"),
    ("gpu", lambda c: c["title_encoder"].update(learning_rate="5e-5"),
     r"title_encoder.learning_rate = '5e-5' is str \(YAML reads a number like 5e-5 as text: write 5.0e-5\)"),
    ("gpu", lambda c: c["title_encoder"].update(learning_rate=float("nan")),
     "title_encoder.learning_rate = nan is not valid: expected a number > 0"),
    ("gpu", lambda c: c["title_encoder"].update(train_layers=13),
     r"title_encoder.train_layers = 13 is not valid: expected 0..12 \(e5-small has 12 layers\)"),
    ("kaggle", lambda c: c["split"].update(test_fraction=1), r"split.test_fraction = 1 is not valid: "
                                                             r"expected a number in \(0, 1\)"),
    ("kaggle", lambda c: c.update(train_seed=-1), "train_seed = -1 is not valid: expected an integer >= 0"),
    ("kaggle", lambda c: c.update(image={"image_size": "big"}),
     "image.image_size = 'big' is str: expected an integer or null"),
    ("kaggle", lambda c: c.update(fusion={"blend": "yes"}),
     "fusion.blend = 'yes' is str: expected true or false or null"),
    ("kaggle", lambda c: c["finetune"].update(epochs=[3, 0]), r"finetune.epochs = \[3, 0\] is not valid"),
    ("kaggle", lambda c: c["image"].update(backbones="vgg16"), "image.backbones = 'vgg16' is str: expected a list"),
    ("kaggle", lambda c: c.update(progress="false"), "progress = 'false' is str: expected true or false"),
    ("kaggle", lambda c: c.update(tfidf={"char_ngrams": [4, 2]}), r"tfidf.char_ngrams = \[4, 2\] is not valid"),
    ("tiny", lambda c: c["sample"].update(n_groups=0), "sample.n_groups = 0 is not valid: expected an integer >= 1"),
    # well typed but wrong: these failed only inside 03, 04 or 16 s into a fit
    ("kaggle", lambda c: c["image"].update(backbones=["efficientnet_lite0", "effnet_b9"]),
     r"image.backbones = \['efficientnet_lite0', 'effnet_b9'\] is not valid: expected a non-empty list of \["),
    ("kaggle", lambda c: c["finetune"].update(backbone="effnet_b9"), "finetune.backbone = 'effnet_b9' is not valid"),
    ("kaggle", lambda c: c["finetune"].update(heads=["cosface"]),
     r"finetune.heads = \['cosface'\] is not valid: expected a non-empty list of \['softmax', 'arcface'\]"),
    ("kaggle", lambda c: c.update(tfidf={"word_weight": 0, "char_weight": 0}),
     "tfidf = .* is not valid: expected word_weight or char_weight > 0"),
])
def test_a_bad_value_stops_the_run_naming_the_file_the_key_and_what_is_expected(configs, profile, change, message):
    path = configs / f"{profile}.yaml"
    _edit(path, change)
    with pytest.raises(ConfigError, match=f"{path}: {message}") as err:
        load(profile, configs_dir=configs)
    assert str(err.value).endswith(f" in {path}.")


def test_null_stands_where_the_type_allows_it_and_an_int_where_a_float_goes(configs):
    _edit(configs / "tiny.yaml", lambda c: (c["image"].update(image_size=None), c["finetune"].update(lr=1),
                                            c.update(fusion={"union_phash": False, "blend": True, "unit_filter": None},
                                                     tuning={"thresholds": [1, 1, 1]})))
    cfg = load("tiny", configs_dir=configs)
    assert cfg.image.image_size is None and cfg.finetune.lr == 1 and cfg.fusion.blend is True
    assert cfg.tuning.thresholds == (1, 1, 1) and isinstance(cfg.image.backbones, tuple)


def test_base_yaml_itself_is_checked(configs):
    _edit(configs / "base.yaml", lambda c: c["tuning"].update(blend_top=0))
    with pytest.raises(ConfigError, match=f"{configs / 'base.yaml'}: tuning.blend_top = 0 is not valid"):
        load("sample", configs_dir=configs)


def test_every_number_and_list_in_base_has_a_value_check():
    """A new setting gets its range in settings.LIMITS, or a bad value of it would fail deep inside a notebook."""
    def leaves(d, prefix=""):
        for key, value in d.items():
            yield from leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [(f"{prefix}{key}", value)]

    def kind(name, cls=Settings):
        head, _, rest = name.partition(".")
        field = settings._fields(cls, "")[head]
        return kind(rest, field) if rest else field

    base = yaml.safe_load((CONFIGS_DIR / "base.yaml").read_text())
    unchecked = [name for name, value in leaves(base) if (isinstance(value, (int, float, list)) or value is None)
                 and not isinstance(value, bool) and kind(name) != (bool | None)     # its type says it all
                 and not any(fnmatchcase(name, p) for p, _, _ in LIMITS)]
    assert unchecked == []


def test_params_yaml_records_the_settings_as_plain_values():
    plain = defaults().to_dict()
    assert json.loads(json.dumps(plain)) == plain and plain["cache_dir"] == str(REPO / ".cache" / "embeddings")


def test_the_title_model_is_named_from_its_registry(configs):
    assert defaults().matcher_options.title_kind in settings.TITLE_MODELS
    _edit(configs / "tiny.yaml", lambda c: c.update(title_model="bert"))
    with pytest.raises(ConfigError, match=r"title_model = 'bert' is not valid: expected one of \['e5-small-arcface'\]"):
        load("tiny", configs_dir=configs)


def test_a_run_records_its_profile_by_name_or_as_the_copy_it_is_and_never_a_local_path(tmp_path):
    from samesame.run.pipeline import shown_command
    own = tmp_path / "cold.yaml"
    own.write_text(yaml.safe_dump({"cache_dir": str(tmp_path / "cache")}))
    assert settings.profile_shown("kaggle") == "kaggle"
    assert settings.profile_shown(CONFIGS_DIR / "tiny.yaml") == "tiny"
    assert settings.profile_shown(own) == "<a copy of profile sample with cache_dir changed>"
    shown = shown_command("fit", str(own), "r1", str(tmp_path))
    assert shown == ("python -m samesame.run.pipeline fit --profile <a copy of profile sample with cache_dir changed> "
                     "--run r1 --data-dir <your Kaggle folder>")
    assert str(tmp_path) not in shown
    assert shown_command("run", "kaggle", "r2", None, ["07"]) == "python -m samesame.run.pipeline run --profile kaggle --run r2 --only 07"


@pytest.mark.parametrize("text, key, lines", [
    ("tfidf:\n  word_weight: 0.5\nseed: 3\ntfidf:\n  char_weight: 0.5\n", "tfidf", "1 and 4"),
    ("fusion:\n  min2: true\n  blend: false\n  min2: false\n", "min2", "2 and 4"),
])
def test_a_key_written_twice_is_refused_naming_the_key_and_the_file(configs, text, key, lines):
    """YAML keeps the last of two keys: the first tfidf block was silently dropped."""
    (configs / "tiny.yaml").write_text(text)
    with pytest.raises(ConfigError, match=f"{configs / 'tiny.yaml'}: key '{key}' is written twice in one mapping "
                                          f"\\(lines {lines}\\).*merge them into one"):
        load("tiny", configs_dir=configs)


def test_python_tags_are_still_refused(configs):
    (configs / "tiny.yaml").write_text("seed: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match=r"tiny.yaml is not valid YAML: could not determine a constructor"):
        load("tiny", configs_dir=configs)
