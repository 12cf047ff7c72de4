"""Run configuration: configs/base.yaml holds every knob once; a profile overrides a few of them.

A key that base.yaml does not have (a typo) would otherwise be passed to no
notebook and the run would quietly use the defaults, so it stops the run with a
message naming the key and the file. So does a base.yaml key that no notebook's
``parameters`` cell declares: it would configure nothing.
"""

from __future__ import annotations

import difflib
from pathlib import Path

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
    """A config file names a key that configures nothing; the message says which key, which file, what to do."""


def load_profile(profile: str, configs_dir: Path | None = None, notebooks_dir: Path | None = None) -> dict:
    """base.yaml merged with a profile (a name in configs/ or a path to a .yaml file), every key checked.

    Returns ``{"data_dir": ..., "sample": {...}, "params": {...}}``; nested mappings
    (``sample``, ``title_encoder``, ...) are merged key by key, everything else replaced.
    """
    configs_dir = Path(configs_dir or CONFIGS_DIR)
    base_path = configs_dir / BASE_FILE
    base = _read(base_path)
    _check_declared(base, base_path, notebooks_dir or NOTEBOOKS_DIR)
    path = profile_path(profile, configs_dir)
    if path == base_path:
        return base
    overrides = _read(path)
    _check_known(overrides, base, path, base_path)
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
