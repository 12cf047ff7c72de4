"""The settings of a run as one typed tree: configs/base.yaml holds every value once, a profile overrides a few.

:class:`Settings` is the tree (one frozen dataclass per concern: split, image, fine-tuning, title encoder,
TF-IDF, fusion options, tuning grid, ...); :func:`load` reads base.yaml, the profile and a notebook's
``overrides`` into it. Library functions take these objects and hold no default values of their own, so a
setting has one home. Every value is checked before anything runs, against the field's type and
:data:`LIMITS`: a typo'd key would otherwise configure nothing, ``epochs: "2"`` would fail minutes into a
run with an unrelated error, and ``n_gallery_groups: -1`` would quietly mean something else. The message
names the file, the key, what is expected and the fix. Paths are anchored at the repository root.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import yaml

from samesame.core.splits import Split, sample_groups
from samesame.core.typed import type_problem
from samesame.image.backbones import available_backbones
from samesame.image.embed import PRECISIONS
from samesame.image.finetune import FinetuneSettings
from samesame.image.finetune.models import HEADS, UNFREEZE_MODES
from samesame.match.options import FusionOptions, MatcherOptions, TuningGrid
from samesame.run.runs import plain
from samesame.text.title_model import CPU_PRECISIONS, TITLE_MODELS, TRAIN_PRECISIONS, TitleModelConfig
from samesame.text.titles import TfidfConfig

REPO = Path(__file__).resolve().parents[3]
CONFIGS_DIR = REPO / "configs"
BASE_FILE = "base.yaml"


@dataclass(frozen=True)
class SampleSettings:
    """The embedded synthetic sample (:func:`samesame.data.sample.generate_sample` arguments)."""

    n_groups: int
    image_size: int
    seed: int


@dataclass(frozen=True)
class ImageSettings:
    """Image embeddings for 03, 05, 06 and 07."""

    backbones: tuple[str, ...]      # 03 compares these
    image_size: int | None          # None: each backbone's native input size
    batch_size: int
    in_fusion: bool                 # 06/07 add image vectors to the fusion (False: titles + phash only)


@dataclass(frozen=True)
class StudySettings:
    """How much the study notebooks show."""

    n_gallery_groups: int           # 01's image grid
    phash_max_threshold: int        # 02's sweep: Hamming distances 0..max
    n_gallery: int                  # 06's galleries per error kind
    max_listings: int | None        # 03 and 06 (ablation, galleries): whole label groups of at most this
                                    # many listings per split (null: all); the fit, the matcher and 07 use all

    def sampled(self, splits: dict[str, pd.DataFrame], seed: int) -> dict[str, pd.DataFrame]:
        """Each split cut to whole label groups of at most ``max_listings`` listings (:func:`sample_groups`)."""
        return {name: sample_groups(df, self.max_listings, seed) for name, df in splits.items()}

    @staticmethod
    def sample_record(full: dict[str, pd.DataFrame], sampled: dict[str, pd.DataFrame]) -> dict:
        """What a notebook records of its sample (None when it used everything): listings used, of how many."""
        if all(len(sampled[name]) == len(df) for name, df in full.items()):
            return {"study_sample": None}
        return {"study_sample": {name: {"listings": len(sampled[name]), "of": len(df)} for name, df in full.items()}}


@dataclass(frozen=True)
class Settings:
    """Every setting of a run (configs/base.yaml, one key per field)."""

    data_dir: Path                  # the Kaggle-layout folder (DATA_DIR replaces it)
    cache_dir: Path | None          # embeddings and title encoders, found again by content
    progress: bool
    precision: str                  # Keras dtype policy: auto (mixed_float16 on a GPU), float32 or mixed_float16
    train_seed: int                 # everything trained or tuned (fine-tuning, title encoder, the recipe's split)
    sample: SampleSettings
    split: Split
    study: StudySettings
    image: ImageSettings
    finetune: FinetuneSettings
    title_model: str                # which of TITLE_MODELS learns the title embedding
    title_encoder: TitleModelConfig # its fine-tuning
    tfidf: TfidfConfig
    fusion: FusionOptions
    tuning: TuningGrid

    @property
    def matcher_options(self) -> MatcherOptions:
        """What :func:`samesame.match.selection.fit_matcher` takes: ``make fit``, 06 and 07 fit the same matcher."""
        return MatcherOptions(self.fusion, self.tuning, self.title_encoder, self.title_model, self.tfidf,
                              self.train_seed)

    def to_dict(self) -> dict:
        """Plain values (paths as text) for params.yaml."""
        return plain(dataclasses.asdict(self))


DERIVED = {"title_encoder.seed": "train_seed"}
"""Fields set from another setting, never written in a config file (one seed for everything trained)."""


class ConfigError(ValueError):
    """A config file names a key that configures nothing, or a bad value; the message says which key, which
    file, what to do."""


def _keep_grid(v: list) -> bool:
    """A ``[start, stop, step]`` grid of match thresholds within (0, 1] that yields at least one value: at 0 or below
    every candidate pair would match, and the grid is rounded to 0.001 (TuningGrid)."""
    return len(v) == 3 and 0.001 <= v[0] <= v[1] <= 1 and v[2] > 0


LIMITS: list[tuple[str, Callable[[Any], bool], str]] = [
    # (dotted-key pattern, test, what is expected): the first pattern matching a key applies; a null is not tested;
    # a section (a mapping) is tested as a whole, as the files read so far make it
    ("*seed", lambda v: v >= 0, "an integer >= 0"),
    ("precision", lambda v: v in PRECISIONS, f"one of {list(PRECISIONS)}"),
    ("title_encoder.cpu_precision", lambda v: v in CPU_PRECISIONS, f"one of {list(CPU_PRECISIONS)}"),
    ("title_encoder.train_precision", lambda v: v in TRAIN_PRECISIONS, f"one of {list(TRAIN_PRECISIONS)}"),
    ("title_model", lambda v: v in TITLE_MODELS, f"one of {sorted(TITLE_MODELS)} (samesame.text.title_model)"),
    ("*fraction", lambda v: 0 < v < 1, "a number in (0, 1)"),
    ("*_quantile", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("*.dropout", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("*.thresholds", _keep_grid, "[start, stop, step] with 0.001 <= start <= stop <= 1 and step > 0 (at 0 every "
                                 "candidate pair matches)"),
    ("*.probabilities", _keep_grid, "[start, stop, step] with 0.001 <= start <= stop <= 1 and step > 0 (at 0 every "
                                    "candidate pair matches)"),
    ("*min2_grid", lambda v: len(v) == 2 and 0 <= v[0] < 1 and v[1] > 0, "[start, step] with 0 <= start < 1, step > 0"),
    ("*.blend_mutual", lambda v: len(v) > 0, "a non-empty list of true/false"),
    ("*.blend_offsets", lambda v: len(v) > 0 and all(0 <= x < 1 for x in v), "a non-empty list of numbers in [0, 1)"),
    ("tuning.weights", lambda v: len(v) > 0 and all(w >= 0 for w in v), "a non-empty list of numbers >= 0"),
    ("tuning.phash_max_bits", lambda v: 0 <= v <= 31, "a Hamming distance in 0..31 (from 32 bits on, the phash "
                                                        "union would match every pair)"),
    ("*.phash_max_*", lambda v: 0 <= v <= 64, "a Hamming distance in 0..64"),
    ("*.train_layers", lambda v: 0 <= v <= 12, "0..12 (e5-small has 12 layers)"),
    ("*.max_len", lambda v: v >= 3, "an integer >= 3 (<s>, </s> and one token)"),
    ("finetune.epochs", lambda v: len(v) > 0 and all(e >= 1 for e in v), "a non-empty list of integers >= 1"),
    ("*.backbones", lambda v: len(v) > 0 and set(v) <= set(available_backbones()),
     f"a non-empty list of {available_backbones()}"),
    ("finetune.backbone", lambda v: v in available_backbones(), f"one of {available_backbones()}"),
    ("finetune.unfreeze", lambda v: len(v) > 0 and set(v) <= set(UNFREEZE_MODES),
     f"a non-empty list of {list(UNFREEZE_MODES)}"),
    ("finetune.heads", lambda v: len(v) > 0 and set(v) <= set(HEADS), f"a non-empty list of {list(HEADS)}"),
    ("tfidf", lambda v: v["word_weight"] > 0 or v["char_weight"] > 0,
     "word_weight or char_weight > 0 (the TF-IDF signal needs its word or its char part)"),
    ("*epochs", lambda v: v >= 0, "an integer >= 0"),
    ("*.pair_max_leaf_nodes", lambda v: v >= 2, "an integer >= 2"),
    ("*.pair_patience", lambda v: v >= 0, "an integer >= 0 (0: no early stopping)"),
    ("*_weight", lambda v: v >= 0, "a number >= 0"),
    ("*.char_ngrams", lambda v: len(v) == 2 and 1 <= v[0] <= v[1], "[low, high] with 1 <= low <= high"),
    ("*.max_features", lambda v: v >= 1, "an integer >= 1 (null: every n-gram)"),
    ("*.n_*", lambda v: v >= 1, "an integer >= 1"),
    ("study.max_listings", lambda v: v >= 2, "an integer >= 2 (listings per split the study questions use), or null"),
    ("*batch_size", lambda v: v >= 1, "an integer >= 1"),
    ("*image_size", lambda v: v >= 1, "an integer >= 1"),
    ("*.views", lambda v: v >= 1, "an integer >= 1"),
    ("*_top", lambda v: v >= 1, "an integer >= 1"),
    ("*.local_k", lambda v: v >= 1, "an integer >= 1 (which neighbour measures a listing's crowding)"),
    ("*.local_alphas", lambda v: len(v) > 0 and all(a > 0 for a in v), "a non-empty list of numbers > 0"),
    ("*.pool_size", lambda v: v >= 2, "an integer >= 2 (listings in the pool the matcher will face), or null"),
    ("*_folds", lambda v: v >= 2, "an integer >= 2"),
    ("*_trees", lambda v: v >= 1, "an integer >= 1"),
    ("*.lr", lambda v: v > 0, "a number > 0"),
    ("*learning_rate", lambda v: v > 0, "a number > 0"),
    ("*scale", lambda v: v > 0, "a number > 0"),
    ("*margin", lambda v: v >= 0, "a number >= 0"),
]
"""Value checks beyond the type, so that a bad value stops the run before anything runs, with the fix."""


def load(profile: str | Path = "sample", overrides: dict | None = None, *, data_dir: str | Path | None = None,
         configs_dir: Path | None = None) -> Settings:
    """base.yaml, then the profile (a name in configs/ or a path to a .yaml file), then ``overrides`` (a mapping
    like a profile's, e.g. from a notebook's parameters cell), every key and value checked.

    Nested mappings merge key by key, everything else is replaced. ``data_dir`` (DATA_DIR) replaces the
    profile's. Relative paths are read from the repository root.
    """
    configs_dir = Path(configs_dir or CONFIGS_DIR)
    base_path = configs_dir / BASE_FILE
    merged = read_base(base_path)
    path = profile_path(profile, configs_dir)
    layers = [] if path == base_path else [(_read(path), str(path))]
    layers += [(overrides, "the notebook's overrides")] if overrides else []
    for layer, source in layers:
        _check(layer, Settings, source, str(base_path), merged)
        merged = merge(merged, layer)
    if data_dir is not None:
        merged["data_dir"] = str(data_dir)
    return _build(Settings, merged)


def defaults() -> Settings:
    """configs/base.yaml alone: the sample profile (tests and ad-hoc calls start from it)."""
    return load("sample")


def read_base(base_path: Path) -> dict:
    """base.yaml checked: every key known, of the right type and range, and every setting present."""
    base = _read(base_path)
    _check(base, Settings, str(base_path), str(base_path), None)
    return base


def profile_path(profile: str | Path, configs_dir: Path = CONFIGS_DIR) -> Path:
    """configs/<profile>.yaml, or ``profile`` itself when it is a path to a yaml file."""
    profile = str(profile)
    path = Path(profile) if profile.endswith((".yaml", ".yml")) else configs_dir / f"{profile}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in configs_dir.glob("*.yaml") if p.name != BASE_FILE)
        raise ConfigError(f"unknown profile {profile!r}: no {path}. Profiles: {known} (or a path to a .yaml file)")
    return path


def profile_shown(profile: str | Path, configs_dir: Path = CONFIGS_DIR) -> str:
    """How a run's record names its profile for a reader who has only the repository: a profile's name, or for a
    file of one's own, the named profile it is a copy of and the keys it changes (the file itself is not shared)."""
    path = profile_path(profile, configs_dir)
    if path.resolve().parent == configs_dir.resolve():
        return path.stem
    own = _flat(_read(path))
    named = {p.stem: _flat(_read(p)) for p in sorted(configs_dir.glob("*.yaml")) if p.name != BASE_FILE}
    changed = {name: sorted(k for k in own.keys() | keys.keys() if own.get(k) != keys.get(k))
               for name, keys in named.items()}
    name = min(changed, key=lambda n: len(changed[n]))
    return f"<a copy of profile {name} with {', '.join(changed[name]) or 'nothing'} changed>"


def _flat(tree: dict, prefix: str = "") -> dict:
    """A nested settings mapping as {"section.key": value}."""
    out = {}
    for key, value in (tree or {}).items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` applied; mappings merge recursively, other values are replaced."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merge(base[key], value) if isinstance(base.get(key), dict) and isinstance(value, dict) else value
    return out


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key, lines: list[int]):
        super().__init__(key, lines)
        self.key, self.lines = key, lines


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no ``!!python/...`` tags), refusing a key written twice in one mapping at any depth:
    YAML keeps the last, so two ``tfidf:`` blocks would silently drop the first."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":    # "<<:" merges may override, as YAML means them to
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:                               # an unhashable key: the safe loader says so
                continue
            if first != key_node.start_mark.line + 1:
                raise _DuplicateKey(key, [first, key_node.start_mark.line + 1])
        return super().construct_mapping(node, deep)


def _read(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path} not found: every profile is read on top of it; restore it from git.")
    try:
        config = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except _DuplicateKey as err:
        raise ConfigError(f"{path}: key {err.key!r} is written twice in one mapping (lines {err.lines[0]} and "
                          f"{err.lines[1]}); YAML would keep only the last and drop the first silently: merge them "
                          "into one.") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path} must be a mapping with the keys of {BASE_FILE}, got {type(config).__name__}")
    return config


# ------------------------------------------------------------------ checking against the tree's types


def _fields(cls: type, prefix: str) -> dict[str, Any]:
    """The settable fields of a settings dataclass -> their types (derived fields left out)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f"{prefix}{f.name}" not in DERIVED}


def _check(config: dict, cls: type, source: str, base_path: str, base: dict | None, prefix: str = "") -> None:
    """Every key of ``config`` is a field of ``cls`` (recursively), of its type and within :data:`LIMITS`.
    ``base`` None: ``config`` is base.yaml itself, which must also hold every field."""
    fields = _fields(cls, prefix)
    for key, value in config.items():
        name = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
            raise ConfigError(f"{source}: unknown key {name!r}{hint}. It would configure nothing, so the run stops. "
                              f"Fix the spelling, or add the setting to {cls.__name__} and to {base_path}.")
        like = None if base is None else base[key]
        kind = fields[key]
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {name!r} must be a mapping like in {base_path}, got {value!r}; "
                                  f"override single keys as {name}: {{key: value}}")
            _check(value, kind, source, base_path, like, f"{name}.")
            value = value if like is None else merge(like, value)
        else:
            problem = type_problem(value, kind)
            if problem:
                example = f", like {like!r} in {base_path}" if base is not None else ""
                raise ConfigError(f"{source}: {name} = {value!r} {problem}{example}. Correct {name} in {source}.")
        limit = next(((test, expected) for pattern, test, expected in LIMITS if fnmatchcase(name, pattern)), None)
        if value is not None and limit is not None and not _passes(limit[0], value):
            raise ConfigError(f"{source}: {name} = {value!r} is not valid: expected {limit[1]}. "
                              f"Correct {name} in {source}.")
    missing = [k for k in fields if k not in config] if base is None else []
    if missing:
        raise ConfigError(f"{source}: {prefix or 'the top level'} lacks {[prefix + k for k in missing]}: base.yaml "
                          "holds every setting once (profiles override). Restore them from git.")


def _passes(test: Callable[[Any], bool], value) -> bool:
    """A LIMITS test; a NaN or infinity fails it."""
    if any(isinstance(x, float) and not math.isfinite(x) for x in (value if isinstance(value, list) else [value])):
        return False
    return bool(test(value))


# ------------------------------------------------------------------ building the typed tree


def _build(cls: type, values: dict, prefix: str = "", root: dict | None = None):
    """The checked mapping as ``cls``: nested dataclasses built, lists made tuples, paths anchored at the repo."""
    root = values if root is None else root
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        value = root[DERIVED[name]] if name in DERIVED else values[f.name]
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            value = _build(kind, value, f"{name}.", root)
        elif isinstance(value, list):
            value = tuple(value)
        elif isinstance(value, str) and Path in (kind, *typing.get_args(kind)):
            value = (REPO / value).resolve()
        kwargs[f.name] = value
    return cls(**kwargs)
