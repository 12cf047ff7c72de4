"""Where notebooks find each other's outputs: one file per artefact in ``runs/<RUN>/models/``.

Make builds these files (they are the targets' prerequisites, see the Makefile), and
notebooks read them here instead of looking up keys in metrics.json:

=====================================  =============================  ==========================
file                                   written by                     read by
=====================================  =============================  ==========================
``models/backbone.json``               03_backbone_compare            05, 06, matcher fit
``models/finetune.json``               04_finetune (also "skipped")   05, 06, matcher fit
``models/embedding.json`` (+ ``.npz``)  05_metric (the image model)   06, matcher fit
``models/matcher/``                    ``make fit`` (or 07 itself)    07, ``make kaggle``
=====================================  =============================  ==========================

The image model used everywhere after 05 is :func:`best_model`, 05's choice: 03's best
pretrained backbone with the training-free levers 05 kept (flip TTA, PCA whitening fitted on
the train split), unless 04's fine-tuned pick beats it on 04's selection groups by more than
the levers' fold noise. Everything is chosen on the train side.
A saved matcher is reused only when it was fitted on the same train.csv (SHA-256 of
its bytes) with the same image model (:func:`matcher_for`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .backbones import Backbone, load_backbone
from .embed import embed_images
from .finetune import SUMMARY_FILE, backbone_from_embedder, finetuned_spec, holdout_groups, load_finetuned
from .fusion import MATCHER_FORMAT, Matcher, fit_matcher
from .image_models import EmbeddingChoice, ImageSignal, embed_splits
from .retrieval import Levers, Whitening, held_out_f1, with_flip_tta, with_whitening
from .title_model import TitleModelConfig
from .tuning import TuningGrid

BACKBONE_FILE = "backbone.json"
EMBEDDING_FILE = "embedding.json"
WHITENING_FILE = "whitening.npz"     # in models/ and, for a matcher whose image model whitens, in its image_model/
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


def embedding_path(run) -> Path:
    return models_dir(run) / EMBEDDING_FILE


@dataclass(frozen=True)
class FinetunedRival:
    """04's fine-tuned pick as 05 compares it: its score on 04's selection groups, those train rows, and its
    stored train-split embeddings (so the whitening 05 keeps can be offered to it too)."""

    spec: dict
    selection_f1: float
    held: np.ndarray
    train: tuple[np.ndarray, np.ndarray] | None = None   # (vectors, ok) of the train split
    labels: np.ndarray | None = None                      # the train split's label groups

    def whitened(self, dims: int) -> tuple[float, Whitening] | None:
        """(score on the selection groups with PCA whitening fitted on the rows it trained on, that whitening
        fitted on the whole train split); None without stored embeddings or without whitening."""
        if not dims or self.train is None:
            return None
        f1 = held_out_f1(Levers(whiten=dims), *self.train, self.labels, self.held)
        return round(f1, 4), Whitening.fit(*self.train, dims=dims)


def finetuned_rival(run, train: pd.DataFrame) -> FinetunedRival | None:
    """04's fine-tuned pick and the train rows it was selected on; None when 04 skipped or kept the pretrained row."""
    summary = _read(finetune_path(run), "finetune", run)
    best = summary.get("best") or {}
    if not best.get("epochs"):
        return None
    info = summary["info"]
    if "selection_fraction" not in info:
        raise ValueError(f"{finetune_path(run)} predates the record of its selection groups: rerun 04 "
                         f"(make finetune RUN={Path(run.path).name})")
    held = holdout_groups(train, info["selection_fraction"], info["seed"])
    stored = load_finetuned(models_dir(run))[1].embeddings["train"]
    return FinetunedRival(image_model_spec(run, levers=False), float(best["selection_mean_f1"]), held,
                          (stored.vectors, stored.ok), train["label_group"].to_numpy())


def pretrained_spec(run, input_size: int | None = None) -> dict:
    """03's best pretrained backbone: the model 05's levers are studied on (it never trained on these groups)."""
    return {"kind": "pretrained", "backbone": _read(backbone_path(run), "backbones", run)["best"],
            "input_size": input_size}


def _candidates(run, input_size: int | None) -> dict:
    finetuned = image_model_spec(run, input_size, levers=False) if has_finetuned(run) else None
    return {"pretrained": pretrained_spec(run, input_size),
            "finetuned": finetuned if finetuned and finetuned["kind"] == "finetuned" else None}


def save_embedding_choice(run, input_size: int | None, choice: EmbeddingChoice,
                          rival: FinetunedRival | None) -> dict:
    """05's artefact: the image model 06/07 use. 03's pretrained backbone with the levers 05 kept, unless 04's
    fine-tuned pick beats it on 04's selection groups by more than the levers' fold noise (their std): a model
    that trained on the data must earn its place. The fine-tuned model competes as stored or with the kept
    PCA whitening (fitted on the rows it trained on), whichever scores better there. Returns the record."""
    whitened = rival.whitened(choice.chosen.whiten) if rival is not None else None
    rival_f1, rival_levers, rival_whitening = (rival.selection_f1, Levers(), None) if rival else (None, None, None)
    if whitened is not None and whitened[0] > rival_f1:     # the kept whitening lifts it: it competes with it
        rival_f1, rival_levers, rival_whitening = whitened[0], Levers(whiten=choice.chosen.whiten), whitened[1]
    pretrained_wins = rival is None or choice.selection_f1 is None or rival_f1 <= choice.selection_f1 + choice.noise
    levers, whitening = (choice.chosen, choice.whitening) if pretrained_wins else (rival_levers, rival_whitening)
    comparison = None if rival is None else {
        "selection groups": int(rival.held.sum()), "noise": choice.noise,
        "pretrained + levers": choice.selection_f1, "fine-tuned (04)": rival.selection_f1}
    if whitened is not None:
        comparison[f"fine-tuned + PCA whitening {choice.chosen.whiten}"] = whitened[0]
    record = {"base": pretrained_spec(run, input_size) if pretrained_wins else rival.spec,
              "levers": {"flip": levers.flip, "whiten": levers.whiten},
              "candidates": _candidates(run, input_size), "comparison": comparison, "study": choice.metrics()}
    if levers.whiten:
        whitening.save(models_dir(run) / WHITENING_FILE)
    path = embedding_path(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    tmp.replace(path)
    return record


def has_finetuned(run) -> bool:
    """04 ran and trained something (it records "skipped" when too few images exist)."""
    return bool(_read(finetune_path(run), "finetune", run).get("best"))


def image_model_spec(run, input_size: int | None = None, levers: bool = True) -> dict:
    """JSON description of :func:`best_model` (what a saved matcher records and rebuilds): 05's choice
    (``models/embedding.json``); ``levers=False``: the model 03/04 chose, before 05."""
    if not levers:
        if has_finetuned(run):
            return {"kind": "finetuned", **finetuned_spec(models_dir(run))}
        return pretrained_spec(run, input_size)
    choice = _read(embedding_path(run), "metric", run)
    if choice.get("candidates") != _candidates(run, input_size):
        raise ValueError(f"{embedding_path(run)} chose between other image models than 03/04 now offer: rerun 05 "
                         f"(make metric RUN={Path(run.path).name})")
    spec = dict(choice["base"])
    if choice["levers"]["whiten"]:
        spec["whitening_sha256"] = file_sha256(models_dir(run) / WHITENING_FILE)
    return {**spec, "levers": choice["levers"]}


def backbone_from_spec(spec: dict, embedder_file: str | Path | None = None,
                       whitening_file: str | Path | None = None) -> Backbone:
    """Rebuild the image model a spec names (a fine-tuned one needs its embedder.keras file, a whitened one
    its whitening.npz), with the levers it records."""
    if spec["kind"] == "pretrained":
        backbone = load_backbone(spec["backbone"], input_size=spec.get("input_size"))
    else:
        backbone = backbone_from_embedder(embedder_file, spec)
    levers = spec.get("levers") or {}
    if levers.get("flip"):
        backbone = with_flip_tta(backbone)
    if levers.get("whiten"):
        if (whitening_file is None or not Path(whitening_file).exists()
                or file_sha256(whitening_file) != spec["whitening_sha256"]):
            raise ValueError(f"{whitening_file}: missing, or not the whitening this image model was fitted with "
                             f"(sha256 {spec['whitening_sha256'][:12]}...): rerun 05 and refit the matcher")
        backbone = with_whitening(backbone, Whitening.load(whitening_file), spec["whitening_sha256"])
    return backbone


def image_trained_groups(run, spec: dict | None) -> list[int]:
    """The label groups the image model ``spec`` trained on (04 records them; none for a pretrained model)."""
    if spec is None or spec["kind"] != "finetuned":
        return []
    info = _read(finetune_path(run), "finetune", run)["info"]
    if "fit_groups" not in info:
        raise ValueError(f"{finetune_path(run)} predates the record of the groups it trained on: rerun 04 "
                         f"(make finetune RUN={Path(run.path).name})")
    return info["fit_groups"]


def best_model(run, input_size: int | None = None, levers: bool = True) -> Backbone:
    """The best image model so far, chosen on the train side: 04's fine-tuned pick, else 03's best backbone,
    with 05's levers unless ``levers=False``."""
    spec = image_model_spec(run, input_size, levers)
    embedder = models_dir(run) / spec["model"] / "embedder.keras" if spec["kind"] == "finetuned" else None
    return backbone_from_spec(spec, embedder, models_dir(run) / WHITENING_FILE)


def best_image_signal(run, splits: dict[str, pd.DataFrame], levers: bool = True, **embed_kwargs) -> ImageSignal:
    """Embeddings of the train/test splits from :func:`best_model` (04's are stored, so no recompute when
    no lever changes them)."""
    input_size = embed_kwargs.pop("input_size", None)
    spec = image_model_spec(run, input_size, levers)
    if spec["kind"] == "finetuned" and not any((spec.get("levers") or {}).values()):
        return load_finetuned(models_dir(run))[1]
    return embed_splits(best_model(run, input_size, levers), splits, **embed_kwargs)


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
    return backbone_from_spec(spec, Path(folder) / IMAGE_MODEL_DIR / "embedder.keras",
                              Path(folder) / IMAGE_MODEL_DIR / WHITENING_FILE)


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
        emb = embed_images(train["image_path"].tolist(),
                           backbone_from_spec(spec, embedder, models_dir(run) / WHITENING_FILE),
                           batch_size=batch_size, cache_dir=cache_dir, progress=progress)
        images = (emb.vectors, emb.ok)
    matcher = fit_matcher(train, image_embeddings=images, image_seen_groups=image_trained_groups(run, spec),
                          cache_dir=cache_dir, progress=progress, **(fit_options or {}))
    matcher.info.update(train_sha256=file_sha256(train_csv), n_train=len(train), image_model=spec,
                        fit_options=options_key(fit_options),
                        fit_seconds=round(time.perf_counter() - started, 2))
    matcher.save(folder)
    files = ([embedder] if spec is not None and spec["kind"] == "finetuned" else []) + (
        [models_dir(run) / WHITENING_FILE] if spec is not None and spec.get("whitening_sha256") else [])
    if files:  # the image model's own files travel with the matcher (make kaggle copies the folder)
        (folder / IMAGE_MODEL_DIR).mkdir()
        for file in files:
            shutil.copy2(file, folder / IMAGE_MODEL_DIR / Path(file).name)
    return matcher


def fit_summary(matcher: Matcher) -> dict:
    """What ``make fit`` records in metrics.json (key "fit"): the shipped recipe, its cross-fitted estimate on
    unseen groups and every step configuration's held-out scores (``Matcher.info["selection"]``)."""
    selection = matcher.info["selection"]
    return {"method": matcher.name, "fit_seconds": matcher.info.get("fit_seconds"),
            "n_train": matcher.info.get("n_train"), "shipped": {"method": matcher.name, **selection["estimate"]},
            "chosen_steps": selection["chosen_name"], "selection": selection["table"], "skipped": selection["skipped"],
            "tuning_groups": matcher.info.get("tuning_groups")}


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
