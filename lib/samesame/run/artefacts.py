"""Where notebooks find each other's outputs: one file per artefact in ``runs/<RUN>/models/``.

Make builds these files (they are the targets' prerequisites, see the Makefile), and
notebooks read them here instead of looking up keys in metrics.json:

=====================================  =============================  ==========================
file                                   written by                     read by
=====================================  =============================  ==========================
``models/backbone.json``               03_backbone_compare            05, 06, matcher fit
``models/finetune.json``               04_finetune (also "skipped")   05, 06, matcher fit
``models/embedding.json`` (+ ``.npz``)  05_metric (the image model)   06, matcher fit
``models/matcher/``                    ``make fit`` (or 06/07)         06, 07, ``make kaggle``
=====================================  =============================  ==========================

The matcher folder's life cycle (fit and save, reuse, embed for it) is :mod:`samesame.run.matcher`.

The image model used everywhere after 05 is :func:`best_model`, 05's choice: 03's best
pretrained backbone with the training-free levers 05 kept (flip TTA, PCA whitening fitted on
the train split), unless 04's fine-tuned pick beats it on 04's selection groups by more than
the levers' fold noise. Everything is chosen on the train side.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from samesame.core.files import write_text
from samesame.image.backbones import Backbone, load_backbone
from samesame.image.comparison import EmbeddingChoice, ImageSignal, embed_splits
from samesame.image.finetune import StoredFinetune, backbone_from_embedder, stored_finetune
from samesame.image.retrieval import Levers, Whitening, held_out_f1, with_flip_tta, with_whitening
from samesame.run.runs import RunError
from samesame.run.settings import Settings

BACKBONE_FILE = "backbone.json"
EMBEDDING_FILE = "embedding.json"
WHITENING_FILE = "whitening.npz"     # in models/ and, for a matcher whose image model whitens, in its image_model/
MATCHER_DIR = "matcher"
IMAGE_MODEL_DIR = "image_model"      # inside a saved matcher: the fine-tuned embedder, when there is one


def models_dir(run) -> Path:
    return Path(run.path) / "models"


def backbone_path(run) -> Path:
    return models_dir(run) / BACKBONE_FILE


def matcher_path(run) -> Path:
    return models_dir(run) / MATCHER_DIR


def save_backbone_choice(run, table_metrics: dict) -> Path:
    """03's artefact: the best pretrained backbone (by train mean F1) and every backbone's row."""
    path = backbone_path(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, json.dumps({"best": table_metrics["best"], "table": table_metrics}, indent=2, default=str))


class MissingArtefact(RunError, FileNotFoundError):
    """An artefact file not built yet: one line naming the make target that builds it."""


def _missing(path, make_target: str, run) -> MissingArtefact:
    name = Path(run.path).name
    return MissingArtefact(f"{path} not found: build it with `make {make_target} RUN={name}` (`make fit RUN={name}` "
                           f"and `make submission RUN={name}` build what they need)")


def _read(path: Path, make_target: str, run) -> dict:
    if not path.exists():
        raise _missing(path, make_target, run)
    return json.loads(path.read_text())


def _finetuned(run) -> StoredFinetune:
    """04's record (``models/finetune.json`` and its model folders), or which make target writes it."""
    try:
        return stored_finetune(models_dir(run))
    except FileNotFoundError as missing:
        raise _missing(missing.filename, "finetune", run) from None


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
    finetuned = _finetuned(run)
    if not finetuned.chose_finetuned:
        return None
    selection = finetuned.selection
    if selection is None:
        raise ValueError(f"{finetuned.path} predates the record of its selection groups: rerun 04 "
                         f"(make finetune RUN={Path(run.path).name})")
    held = selection.held_out(train)
    stored = finetuned.embeddings()[1].embeddings["train"]
    return FinetunedRival(image_model_spec(run, levers=False), selection.score, held,
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
    write_text(path, json.dumps(record, indent=2, default=str))
    return record


def has_finetuned(run) -> bool:
    """04 ran and trained something (it records "skipped" when too few images exist)."""
    return _finetuned(run).trained


def image_model_spec(run, input_size: int | None = None, levers: bool = True) -> dict:
    """JSON description of :func:`best_model` (what a saved matcher records and rebuilds): 05's choice
    (``models/embedding.json``); ``levers=False``: the model 03/04 chose, before 05."""
    if not levers:
        if has_finetuned(run):
            return {"kind": "finetuned", **_finetuned(run).spec()}
        return pretrained_spec(run, input_size)
    choice = _read(embedding_path(run), "metric", run)
    if choice.get("candidates") != _candidates(run, input_size):
        raise RunError(f"{embedding_path(run)} chose between other image models than 03/04 now offer: rerun 05 "
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
    finetuned = _finetuned(run)
    if finetuned.fit_groups is None:
        raise ValueError(f"{finetuned.path} predates the record of the groups it trained on: rerun 04 "
                         f"(make finetune RUN={Path(run.path).name})")
    return finetuned.fit_groups


def best_model(run, input_size: int | None = None, levers: bool = True) -> Backbone:
    """The best image model so far, chosen on the train side: 04's fine-tuned pick, else 03's best backbone,
    with 05's levers unless ``levers=False``."""
    spec = image_model_spec(run, input_size, levers)
    return backbone_from_spec(spec, embedder_file(run, spec), models_dir(run) / WHITENING_FILE)


def embedder_file(run, spec: dict) -> Path | None:
    """The embedder.keras of the fine-tuned model ``spec`` names, in 04's folders (None for a pretrained one)."""
    return _finetuned(run).embedder_file(spec["model"]) if spec["kind"] == "finetuned" else None


def best_image_signal(run, splits: dict[str, pd.DataFrame], cfg: Settings, levers: bool = True) -> ImageSignal:
    """Embeddings of the train/test splits from :func:`best_model` (04's are stored, so no recompute when
    no lever changes them)."""
    spec = image_model_spec(run, cfg.image.image_size, levers)
    if spec["kind"] == "finetuned" and not any((spec.get("levers") or {}).values()):
        return _finetuned(run).embeddings()[1]
    return embed_splits(best_model(run, cfg.image.image_size, levers), splits, batch_size=cfg.image.batch_size,
                        cache_dir=cfg.cache_dir, progress=cfg.progress)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (read in blocks): what ties a saved matcher to its train.csv and whitening."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
