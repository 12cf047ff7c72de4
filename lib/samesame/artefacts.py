"""Where notebooks find each other's outputs: one file per artefact in ``runs/<RUN>/models/``.

Make builds these files (they are the targets' prerequisites, see the Makefile), and
notebooks read them here instead of looking up keys in metrics.json:

=====================================  =============================  ==========================
file                                   written by                     read by
=====================================  =============================  ==========================
``models/backbone.json``               03_backbone_compare            05, 06, matcher fit
``models/finetune.json``               04_finetune (also "skipped")   05, 06, matcher fit
``models/matcher/``                    ``make fit`` (or 07 itself)    07, ``make kaggle``
=====================================  =============================  ==========================

The image model used everywhere after 04 is :func:`best_model`: 04's fine-tuned pick when
it trained one, else 03's best pretrained backbone (both chosen on the train side).
A saved matcher is reused only when it was fitted on the same train.csv (SHA-256 of
its bytes) with the same image model (:func:`matcher_for`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .backbones import Backbone, load_backbone
from .embed import embed_images
from .finetune import SUMMARY_FILE, backbone_from_embedder, finetuned_spec, load_finetuned
from .fusion import MATCHER_FORMAT, Matcher, fit_matcher
from .image_models import ImageSignal, embed_splits
from .title_model import TitleModelConfig
from .tuning import TuningGrid

BACKBONE_FILE = "backbone.json"
MATCHER_DIR = "matcher"
IMAGE_MODEL_DIR = "image_model"      # inside a saved matcher: the fine-tuned embedder, when there is one


def models_dir(run) -> Path:
    return Path(run.path) / "models"


def backbone_path(run) -> Path:
    return models_dir(run) / BACKBONE_FILE


def finetune_path(run) -> Path:
    return models_dir(run) / SUMMARY_FILE


def matcher_path(run) -> Path:
    return models_dir(run) / MATCHER_DIR


def save_backbone_choice(run, table_metrics: dict) -> Path:
    """03's artefact: the best pretrained backbone (by train mean F1) and every backbone's row."""
    path = backbone_path(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"best": table_metrics["best"], "table": table_metrics}, indent=2, default=str))
    return path


def _read(path: Path, make_target: str, run) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: build it with `make {make_target} RUN={Path(run.path).name}` "
                                f"(or `make submission RUN=...`, which builds what it needs)")
    return json.loads(path.read_text())


def has_finetuned(run) -> bool:
    """04 ran and trained something (it records "skipped" when too few images exist)."""
    return bool(_read(finetune_path(run), "finetune", run).get("best"))


def image_model_spec(run, input_size: int | None = None) -> dict:
    """JSON description of :func:`best_model` (what a saved matcher records and rebuilds)."""
    if has_finetuned(run):
        return {"kind": "finetuned", **finetuned_spec(models_dir(run))}
    name = _read(backbone_path(run), "backbones", run)["best"]
    return {"kind": "pretrained", "backbone": name, "input_size": input_size}


def backbone_from_spec(spec: dict, embedder_file: str | Path | None = None) -> Backbone:
    """Rebuild the image model a spec names (a fine-tuned one needs its embedder.keras file)."""
    if spec["kind"] == "pretrained":
        return load_backbone(spec["backbone"], input_size=spec.get("input_size"))
    return backbone_from_embedder(embedder_file, spec)


def best_model(run, input_size: int | None = None) -> Backbone:
    """The best image model so far, chosen on the train side: 04's fine-tuned pick, else 03's best backbone."""
    spec = image_model_spec(run, input_size)
    embedder = models_dir(run) / spec["model"] / "embedder.keras" if spec["kind"] == "finetuned" else None
    return backbone_from_spec(spec, embedder)


def best_image_signal(run, splits: dict[str, pd.DataFrame], **embed_kwargs) -> ImageSignal:
    """Embeddings of the train/test splits from :func:`best_model` (04's are stored, so no recompute)."""
    if has_finetuned(run):
        return load_finetuned(models_dir(run))[1]
    return embed_splits(best_model(run, embed_kwargs.pop("input_size", None)), splits, **embed_kwargs)


# ---------------------------------------------------------------- the fitted matcher


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def matcher_image_backbone(matcher: Matcher, folder: str | Path) -> Backbone | None:
    """The image model a saved matcher was fitted with (None: it uses no images)."""
    spec = matcher.info.get("image_model")
    if spec is None:
        return None
    return backbone_from_spec(spec, Path(folder) / IMAGE_MODEL_DIR / "embedder.keras")


def embed_for_matcher(matcher: Matcher, folder: str | Path, df: pd.DataFrame, *, batch_size: int = 32,
                      cache_dir=None, progress: bool = True):
    """``image_embeddings`` for :meth:`Matcher.predict` on ``df`` (None when the matcher uses no images)."""
    backbone = matcher_image_backbone(matcher, folder)
    if backbone is None:
        return None
    emb = embed_images(df["image_path"].tolist(), backbone, batch_size=batch_size, cache_dir=cache_dir,
                       progress=progress)
    return emb.vectors, emb.ok


def fit_and_save(run, train_csv: str | Path, train: pd.DataFrame, *, use_images: bool = True,
                 image_size: int | None = None, batch_size: int = 32, cache_dir=None, progress: bool = True,
                 folder: str | Path | None = None, fit_options: dict | None = None) -> Matcher:
    """Fit the matcher on all of ``train`` (images from :func:`best_model`) and save it, self-contained,
    to ``folder`` (default ``runs/<RUN>/models/matcher``). ``fit_options``: :func:`fit_matcher` keywords
    (title model, seed, fusion steps), recorded so a matcher fitted with other options is not reused."""
    folder = Path(folder) if folder else matcher_path(run)
    started = time.perf_counter()
    spec = image_model_spec(run, image_size) if use_images else None
    images = None
    if spec is not None:
        embedder = models_dir(run) / spec["model"] / "embedder.keras" if spec["kind"] == "finetuned" else None
        emb = embed_images(train["image_path"].tolist(), backbone_from_spec(spec, embedder), batch_size=batch_size,
                           cache_dir=cache_dir, progress=progress)
        images = (emb.vectors, emb.ok)
    matcher = fit_matcher(train, image_embeddings=images, cache_dir=cache_dir, progress=progress, **(fit_options or {}))
    matcher.info.update(train_sha256=file_sha256(train_csv), n_train=len(train), image_model=spec,
                        fit_options=options_key(fit_options),
                        fit_seconds=round(time.perf_counter() - started, 2))
    matcher.save(folder)
    if spec is not None and spec["kind"] == "finetuned":
        (folder / IMAGE_MODEL_DIR).mkdir()
        shutil.copy2(embedder, folder / IMAGE_MODEL_DIR / "embedder.keras")
    return matcher


def fit_summary(matcher: Matcher) -> dict:
    """What ``make fit`` records in metrics.json (key "fit"): the shipped recipe, its cross-fitted estimate on
    unseen groups and every step configuration's held-out scores (``Matcher.info["selection"]``)."""
    selection = matcher.info["selection"]
    return {"method": matcher.name, "fit_seconds": matcher.info.get("fit_seconds"),
            "n_train": matcher.info.get("n_train"), "shipped": {"method": matcher.name, **selection["estimate"]},
            "chosen_steps": selection["chosen_name"], "selection": selection["table"], "skipped": selection["skipped"]}


def fit_options(train_seed: int, title_encoder: dict, fusion_tuning: dict, fusion_grid: dict) -> dict:
    """:func:`fit_matcher` keywords from a run's parameters (the profile's ``train_seed``, ``title_encoder``,
    ``fusion_tuning`` and ``fusion_grid``), so ``make fit`` and 07 fit the same matcher."""
    return dict(title_model=TitleModelConfig(seed=train_seed, **title_encoder), seed=train_seed,
                grid=TuningGrid(**fusion_grid), **fusion_tuning)


def options_key(fit_options: dict | None) -> str:
    """The fit options as a stable string (dataclass configs print their fields)."""
    return repr(sorted((fit_options or {}).items()))


def saved_matcher_fits(folder: str | Path, train_csv: str | Path, image_spec: dict | None,
                       fit_options: dict | None = None) -> bool:
    """Whether ``folder`` holds a matcher fitted on this train.csv (same bytes) with this image model and options,
    saved in the format this samesame reads (an older one is refitted, not loaded)."""
    meta = Path(folder) / "matcher.json"
    if not meta.exists():
        return False
    saved = json.loads(meta.read_text())
    info = saved.get("info", {})
    return (saved.get("format") == MATCHER_FORMAT and info.get("train_sha256") == file_sha256(train_csv)
            and info.get("image_model") == image_spec and info.get("fit_options") == options_key(fit_options))


def matcher_for(run, train_csv: str | Path, train: pd.DataFrame, *, use_images: bool = True,
                image_size: int | None = None, batch_size: int = 32, cache_dir=None,
                fit_options: dict | None = None, progress: bool = True) -> tuple[Matcher, dict]:
    """The run's saved matcher when it was fitted on this train.csv with this image model, else a new fit (saved).

    Returns the matcher and ``{"matcher_loaded": bool, "fit_seconds": s, "load_seconds": s}`` for metrics.json
    (fit_seconds: time spent fitting now, 0 when loaded).
    """
    folder = matcher_path(run)
    spec = image_model_spec(run, image_size) if use_images else None
    started = time.perf_counter()
    if saved_matcher_fits(folder, train_csv, spec, fit_options):
        matcher = Matcher.load(folder)
        return matcher, {"matcher_loaded": True, "fit_seconds": 0.0,
                         "load_seconds": round(time.perf_counter() - started, 2)}
    matcher = fit_and_save(run, train_csv, train, use_images=use_images, image_size=image_size,
                           batch_size=batch_size, cache_dir=cache_dir, progress=progress, folder=folder,
                           fit_options=fit_options)
    return matcher, {"matcher_loaded": False, "fit_seconds": round(time.perf_counter() - started, 2),
                     "load_seconds": 0.0}


def match_hash(matches) -> str:
    """Short fingerprint of a list of match sets (equal matches <=> equal hash), for metrics.json."""
    digest = hashlib.sha256()
    for m in matches:
        digest.update(np.asarray(m, dtype=np.int64).tobytes() + b"|")
    return digest.hexdigest()[:16]
