"""Run configuration: configs/base.yaml holds every knob once; a profile overrides a few of them.

A key that base.yaml does not have (a typo) would otherwise be passed to no
notebook and the run would quietly use the defaults, so it stops the run with a
message naming the key and the file. So does a base.yaml key that no notebook's
``parameters`` cell declares: it would configure nothing. And so does a value of
the wrong type or out of range (:data:`LIMITS`): ``epochs: "2"`` or a descending
threshold grid would otherwise fail minutes into a run with an unrelated error,
and ``n_gallery_groups: -1`` would quietly mean something else.
"""

from __future__ import annotations

import difflib
import math
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Callable

import papermill as pm
import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIGS_DIR = REPO / "configs"
NOTEBOOKS_DIR = REPO / "notebooks"
BASE_FILE = "base.yaml"
TOP_KEYS = ("data_dir", "sample", "params")
PIPELINE_PARAMS = ("data_dir", "run_dir")
"""Notebook parameters the pipeline sets itself (from DATA_DIR and RUN), never from a config file."""


class ConfigError(ValueError):
    """A config file names a key that configures nothing, or a bad value; the message says which key, which
    file, what to do."""


def _grid(low: float, high: float) -> Callable[[list], bool]:
    """A ``[start, stop, step]`` grid within [low, high] that yields at least one value."""
    return lambda v: len(v) == 3 and low <= v[0] <= v[1] <= high and v[2] > 0


LIMITS: list[tuple[str, Callable[[Any], bool], str]] = [
    # (dotted-key pattern, test, what is expected): the first pattern matching a key applies; a null is not tested
    ("*seed", lambda v: v >= 0, "an integer >= 0"),
    ("*_fraction", lambda v: 0 < v < 1, "a number in (0, 1)"),
    ("*_quantile", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("*.dropout", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("*.thresholds", _grid(-1, 1), "[start, stop, step] with -1 <= start <= stop <= 1 and step > 0"),
    ("*.probabilities", _grid(0, 1), "[start, stop, step] with 0 <= start <= stop <= 1 and step > 0"),
    ("*.fusion_grid.weights", lambda v: len(v) > 0 and all(w >= 0 for w in v), "a non-empty list of numbers >= 0"),
    ("*.fusion_tuning.*", lambda v: isinstance(v, bool), "true, false or null"),
    ("*.phash_max_*", lambda v: 0 <= v <= 64, "a Hamming distance in 0..64"),
    ("*.train_layers", lambda v: 0 <= v <= 12, "0..12 (e5-small has 12 layers)"),
    ("*.max_len", lambda v: v >= 3, "an integer >= 3 (<s>, </s> and one token)"),
    ("*.finetune_epochs", lambda v: len(v) > 0 and all(e >= 1 for e in v), "a non-empty list of integers >= 1"),
    ("*.backbones", len, "a non-empty list"),
    ("*.finetune_unfreeze", len, "a non-empty list"),
    ("*.finetune_heads", len, "a non-empty list"),
    ("*epochs", lambda v: v >= 0, "an integer >= 0"),
    ("*.pair_max_leaf_nodes", lambda v: v >= 2, "an integer >= 2"),
    ("*.n_*", lambda v: v >= 1, "an integer >= 1"),
    ("*batch_size", lambda v: v >= 1, "an integer >= 1"),
    ("*image_size", lambda v: v >= 1, "an integer >= 1"),
    ("*_views", lambda v: v >= 1, "an integer >= 1"),
    ("*_top", lambda v: v >= 1, "an integer >= 1"),
    ("*_folds", lambda v: v >= 2, "an integer >= 2"),
    ("*_trees", lambda v: v >= 1, "an integer >= 1"),
    ("*_lr", lambda v: v > 0, "a number > 0"),
    ("*learning_rate", lambda v: v > 0, "a number > 0"),
    ("*scale", lambda v: v > 0, "a number > 0"),
    ("*margin", lambda v: v >= 0, "a number >= 0"),
]
"""Value checks beyond the type, so that a bad value stops the run before anything runs, with the fix."""
_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list"}


def load_profile(profile: str, configs_dir: Path | None = None, notebooks_dir: Path | None = None) -> dict:
    """base.yaml merged with a profile (a name in configs/ or a path to a .yaml file), every key checked.

    Returns ``{"data_dir": ..., "sample": {...}, "params": {...}}``; nested mappings
    (``sample``, ``title_encoder``, ...) are merged key by key, everything else replaced.
    """
    configs_dir = Path(configs_dir or CONFIGS_DIR)
    base_path = configs_dir / BASE_FILE
    base = _read(base_path)
    _check_declared(base, base_path, notebooks_dir or NOTEBOOKS_DIR)
    _check_values(base, base, base_path, base_path)
    path = profile_path(profile, configs_dir)
    if path == base_path:
        return base
    overrides = _read(path)
    _check_known(overrides, base, path, base_path)
    _check_values(overrides, base, path, base_path)
    return merge(base, overrides)


def profile_path(profile: str, configs_dir: Path) -> Path:
    """configs/<profile>.yaml, or ``profile`` itself when it is a path to a yaml file."""
    path = Path(profile) if profile.endswith((".yaml", ".yml")) else configs_dir / f"{profile}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in configs_dir.glob("*.yaml") if p.name != BASE_FILE)
        raise ConfigError(f"unknown profile {profile!r}: no {path}. Profiles: {known} (or a path to a .yaml file)")
    return path


def merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` applied; mappings merge recursively, other values are replaced."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merge(base[key], value) if isinstance(base.get(key), dict) and isinstance(value, dict) else value
    return out


def declared_parameters(notebooks_dir: Path | None = None) -> dict[str, list[str]]:
    """Every parameter some notebook's ``parameters`` cell declares -> the notebooks declaring it."""
    declared: dict[str, list[str]] = {}
    for nb in sorted(Path(notebooks_dir or NOTEBOOKS_DIR).glob("[0-9][0-9]_*.ipynb")):
        for name in pm.inspect_notebook(str(nb)):
            declared.setdefault(name, []).append(nb.stem)
    return declared


def _read(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path} not found: every profile is read on top of it; restore it from git.")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path} must be a mapping with keys {list(TOP_KEYS)}, got {type(config).__name__}")
    return config


def _check_known(overrides: dict, base: dict, path: Path, base_path: Path, prefix: str = "") -> None:
    """Every key of ``overrides`` exists in ``base`` (recursively); a mapping stays a mapping."""
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        if key not in base:
            close = difflib.get_close_matches(str(key), [str(k) for k in base], n=1)
            hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
            raise ConfigError(f"{path}: unknown key {name!r}{hint}. It would configure nothing, so the run stops. "
                              f"Fix the spelling, or add the knob to {base_path} and to a notebook's parameters cell.")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: {name!r} must be a mapping like in {base_path}, got {value!r}; "
                                  f"override single keys as {name}: {{key: value}}")
            _check_known(value, base[key], path, base_path, f"{name}.")


def _check_values(config: dict, base: dict, path: Path, base_path: Path, prefix: str = "") -> None:
    """Every value of ``config`` (base.yaml or a profile) has the type of base.yaml's value for its key and
    passes its :data:`LIMITS` check; keys are known (checked before)."""
    for key, value in config.items():
        name, like = f"{prefix}{key}", base[key]
        if isinstance(like, dict):
            _check_values(value, like, path, base_path, f"{name}.")
            continue
        problem = _type_problem(value, like)
        if problem:
            raise ConfigError(f"{path}: {name} = {value!r} {problem}, like {like!r} in {base_path}. "
                              f"Correct {name} in {path}.")
        limit = next(((test, expected) for pattern, test, expected in LIMITS if fnmatchcase(name, pattern)), None)
        if value is not None and limit is not None and not _passes(limit[0], value):
            raise ConfigError(f"{path}: {name} = {value!r} is not valid: expected {limit[1]}. "
                              f"Correct {name} in {path}.")


def _type_problem(value, like) -> str | None:
    """Why ``value`` cannot stand where base.yaml has ``like`` (None: it can). A null is allowed only where
    base.yaml has null, which says nothing of the type (LIMITS then checks it); an int stands for a float."""
    if like is None:
        return None
    kind = float if isinstance(like, float) else type(like)
    if value is None or not _is(value, kind):
        hint = (" (YAML reads a number like 5e-5 as text: write 5.0e-5)"
                if isinstance(value, str) and kind is float and _is_float_text(value) else "")
        return f"is {'null' if value is None else type(value).__name__}{hint}: expected {_TYPE_NAMES.get(kind, kind)}"
    if isinstance(like, list) and like:
        item = float if any(isinstance(x, float) for x in like) else type(like[0])
        wrong = [x for x in value if not _is(x, item)]
        if wrong:
            return f"holds {wrong[0]!r} ({type(wrong[0]).__name__}): expected every item to be {_TYPE_NAMES[item]}"
    return None


def _is(value, kind: type) -> bool:
    """isinstance, except that a bool is no number and an int is a float."""
    if kind in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, (int, float) if kind is float else kind)


def _is_float_text(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _passes(test: Callable[[Any], bool], value) -> bool:
    """A LIMITS test; a NaN or infinity fails it, and so does a value it cannot even compare (text where a
    number goes, under a null base)."""
    if any(isinstance(x, float) and not math.isfinite(x) for x in (value if isinstance(value, list) else [value])):
        return False
    try:
        return bool(test(value))
    except TypeError:
        return False


def _check_declared(base: dict, base_path: Path, notebooks_dir: Path) -> None:
    """Top-level keys are the known ones, and every parameter is declared by some notebook."""
    _check_known(base, dict.fromkeys(TOP_KEYS), base_path, base_path)
    declared = declared_parameters(notebooks_dir)
    for key in base.get("params") or {}:
        if key in PIPELINE_PARAMS:
            raise ConfigError(f"{base_path}: params.{key} is set by the pipeline (DATA_DIR / RUN); remove it there")
        if key not in declared:
            raise ConfigError(f"{base_path}: params.{key} is declared by no notebook's parameters cell in "
                              f"{notebooks_dir}, so it would configure nothing. Remove it, or declare it in the "
                              "notebook that uses it.")
