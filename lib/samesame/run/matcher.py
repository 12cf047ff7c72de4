"""A run's saved matcher, ``runs/<RUN>/models/matcher/``: fitted once on all of train.csv, reused by 06, 07
and ``make kaggle``.

A saved matcher is reused only when it was fitted on the same train.csv (SHA-256 of its bytes) with the same
image model and the same :class:`samesame.match.selection.MatcherOptions` (:func:`matcher_for`); the image
model's own files travel inside the folder, so the folder alone rebuilds everything (the Kaggle bundle).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from samesame.image.backbones import Backbone
from samesame.image.embed import embed_images
from samesame.image.finetune.files import EMBEDDER_FILE
from samesame.match.matching import MATCHER_FORMAT, Matcher
from samesame.match.options import MatcherOptions
from samesame.match.selection import fit_matcher, half_encoder
from samesame.run.artefacts import (IMAGE_MODEL_DIR, WHITENING_FILE, backbone_from_spec, embedder_file, file_sha256,
                                    image_model_spec, image_trained_groups, matcher_path, models_dir)
from samesame.run.settings import Settings


def matcher_image_backbone(matcher: Matcher, folder: str | Path) -> Backbone | None:
    """The image model a saved matcher was fitted with (None: it uses no images)."""
    spec = matcher.info.get("image_model")
    if spec is None:
        return None
    return backbone_from_spec(spec, Path(folder) / IMAGE_MODEL_DIR / EMBEDDER_FILE,
                              Path(folder) / IMAGE_MODEL_DIR / WHITENING_FILE)


def embed_for_matcher(matcher: Matcher, folder: str | Path, df: pd.DataFrame, *, batch_size: int,
                      cache_dir=None, progress: bool = True):
    """``image_embeddings`` for :meth:`Matcher.predict` on ``df`` (None when the matcher uses no images)."""
    backbone = matcher_image_backbone(matcher, folder)
    if backbone is None:
        return None
    emb = embed_images(df["image_path"].tolist(), backbone, batch_size=batch_size, cache_dir=cache_dir,
                       progress=progress)
    return emb.vectors, emb.ok


KAGGLE_STUB_ROWS = 3
"""Kaggle's public test.csv holds 3 rows of a hidden test set of ~70,000: a test.csv this small says nothing of
the pool the matcher will face."""


def matcher_options(cfg: Settings, test_rows: int) -> MatcherOptions:
    """The fit's options for a test.csv of ``test_rows`` listings: the pool the matcher is tuned for is test.csv's
    size, or ``fusion.pool_size`` while test.csv is no bigger than Kaggle's public stub."""
    options = cfg.matcher_options
    return options.changed(pool_size=test_rows if test_rows > KAGGLE_STUB_ROWS else options.fusion.pool_size)


def fit_and_save(run, cfg: Settings, train: pd.DataFrame, test_rows: int, folder: str | Path | None = None) -> Matcher:
    """Fit the matcher on all of ``train`` (cfg.data_dir's train.csv; images from the run's image model,
    :func:`samesame.run.artefacts.best_model`) for a test pool of ``test_rows`` listings (:func:`matcher_options`)
    and save it, self-contained, to ``folder`` (default ``runs/<RUN>/models/matcher``), with what
    :func:`saved_matcher_fits` checks before reusing it."""
    folder = Path(folder) if folder else matcher_path(run)
    options = matcher_options(cfg, test_rows)
    started = time.perf_counter()
    spec = image_model_spec(run, cfg.image.image_size) if cfg.image.in_fusion else None
    images, files = None, []
    if spec is not None:
        embedder = embedder_file(run, spec)
        emb = embed_images(train["image_path"].tolist(),
                           backbone_from_spec(spec, embedder, models_dir(run) / WHITENING_FILE),
                           batch_size=cfg.image.batch_size, cache_dir=cfg.cache_dir, progress=cfg.progress)
        images = (emb.vectors, emb.ok)
        files = ([embedder] if embedder else []) + ([models_dir(run) / WHITENING_FILE]
                                                    if spec.get("whitening_sha256") else [])
    matcher = fit_matcher(train, options, image_embeddings=images, image_seen_groups=image_trained_groups(run, spec),
                          cache_dir=cfg.cache_dir, progress=cfg.progress)
    matcher.info.update(train_sha256=file_sha256(cfg.data_dir / "train.csv"), n_train=len(train),
                        image_model=spec,
                        image_dim=None if images is None else int(images[0].shape[1]), fit_options=options_key(options),
                        fit_seconds=round(time.perf_counter() - started, 2))
    # the image model's own files travel with the matcher (make kaggle copies the folder)
    matcher.save(folder, {IMAGE_MODEL_DIR: files} if files else None)
    return matcher


def half_encoders(matcher: Matcher, cfg: Settings, train: pd.DataFrame) -> tuple:
    """The fit's title encoders of half A and half B of ``train`` (06's ablation matches each half with the other's):
    A's ships inside the matcher, B's is found in the cache (trained again when the cache lost it)."""
    if matcher.encoder is None:
        return None, None
    return matcher.encoder, half_encoder(train, cfg.matcher_options, "B", cfg.cache_dir, cfg.progress)


def fit_summary(matcher: Matcher) -> dict:
    """What ``make fit`` records in metrics.json (key "fit"): the shipped recipe, its cross-fitted estimate on
    unseen groups and every step configuration's held-out scores (``Matcher.info["selection"]``)."""
    selection = matcher.info["selection"]
    return {"method": matcher.name, "fit_seconds": matcher.info.get("fit_seconds"),
            "n_train": matcher.info.get("n_train"), "shipped": {"method": matcher.name, **selection["estimate"]},
            "chosen_steps": selection["chosen_name"], "selection": selection["table"], "skipped": selection["skipped"],
            "tuning_groups": matcher.info.get("tuning_groups"), "images_left_out": matcher.info.get("images_left_out"),
            "pools": selection.get("pools"),
            "pool_curve": selection.get("curve")}


def options_key(options: MatcherOptions) -> str:
    """The fit options as a stable string (dataclasses print their fields)."""
    return repr(options)


def saved_matcher_fits(folder: str | Path, train_csv: str | Path, image_spec: dict | None,
                       options: MatcherOptions) -> bool:
    """Whether ``folder`` holds a matcher fitted on this train.csv (same bytes) with this image model and options,
    saved in the format this samesame reads (an older one is refitted, not loaded)."""
    meta = Path(folder) / "matcher.json"
    if not meta.exists():
        return False
    saved = json.loads(meta.read_text())
    info = saved.get("info", {})
    return (saved.get("format") == MATCHER_FORMAT and info.get("train_sha256") == file_sha256(train_csv)
            and info.get("image_model") == image_spec and info.get("fit_options") == options_key(options))


def matcher_for(run, cfg: Settings, train: pd.DataFrame, test_rows: int) -> tuple[Matcher, dict]:
    """The run's saved matcher when it was fitted on cfg.data_dir's train.csv with this image model and these
    options (for a test.csv of ``test_rows`` listings), else a new fit (saved).

    Returns the matcher and ``{"matcher_loaded": bool, "fit_seconds": s, "load_seconds": s}`` for metrics.json
    (fit_seconds: time spent fitting now, 0 when loaded).
    """
    folder = matcher_path(run)
    spec = image_model_spec(run, cfg.image.image_size) if cfg.image.in_fusion else None
    started = time.perf_counter()
    if saved_matcher_fits(folder, cfg.data_dir / "train.csv", spec, matcher_options(cfg, test_rows)):
        matcher = Matcher.load(folder)
        return matcher, {"matcher_loaded": True, "fit_seconds": 0.0,
                         "load_seconds": round(time.perf_counter() - started, 2)}
    matcher = fit_and_save(run, cfg, train, test_rows, folder)
    return matcher, {"matcher_loaded": False, "fit_seconds": round(time.perf_counter() - started, 2),
                     "load_seconds": 0.0}


def match_hash(matches) -> str:
    """Short fingerprint of a list of match sets (equal matches <=> equal hash), for metrics.json."""
    digest = hashlib.sha256()
    for m in matches:
        digest.update(np.asarray(m, dtype=np.int64).tobytes() + b"|")
    return digest.hexdigest()[:16]
