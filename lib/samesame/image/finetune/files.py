"""04's results in a run's ``models/`` folder, and the one way to read them back: :func:`stored_finetune`.

Only this module knows the layout, so the rest of samesame asks a :class:`StoredFinetune` instead of building
paths or reading keys: ``finetune.json`` (every grid row, the chosen one, how it was selected and what rebuilds it,
or why the grid was skipped) and one folder per row, ``<model>/embedder.keras`` (trunk features -> embedding) with
its ``<split>.npy`` / ``<split>_status.npy`` embeddings of the train and test splits.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from samesame.image.backbones import Backbone, load_backbone
from samesame.image.comparison import ImageSignal
from samesame.image.embed import Embeddings
from samesame.image.finetune.models import build_models, split_backbone
from samesame.image.finetune.train import holdout_groups

SUMMARY_FILE = "finetune.json"
EMBEDDER_FILE = "embedder.keras"
REBUILD_KEYS = ("backbone", "image_size", "cut_layer")  # with a row's model and weights: what rebuilds it anywhere


def _row_dir(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / name


def save_row(models_dir: Path, name: str, embedder: keras.Model, signal: ImageSignal) -> None:
    """<models_dir>/<name>/embedder.keras (trunk features -> embedding) and <split>.npy / <split>_status.npy."""
    folder = _row_dir(models_dir, name)
    folder.mkdir(parents=True, exist_ok=True)
    embedder.save(folder / EMBEDDER_FILE)
    for split, emb in signal.embeddings.items():
        np.save(folder / f"{split}.npy", emb.vectors)
        np.save(folder / f"{split}_status.npy", emb.status)


def clear_models(models_dir: Path) -> None:
    """Remove the rows of an earlier grid in ``models_dir`` (so they never mix with this one), nothing else."""
    if not (models_dir / SUMMARY_FILE).exists():
        return
    for row in stored_finetune(models_dir).summary["rows"]:
        shutil.rmtree(_row_dir(models_dir, row["model"]), ignore_errors=True)
    (models_dir / SUMMARY_FILE).unlink()


def write_summary(models_dir: Path, metrics: dict) -> None:
    """finetune.json: the grid's metrics plus, when it trained models, the :data:`REBUILD_KEYS` from its info."""
    info = metrics["info"]
    summary = {**metrics, **{k: info[k] for k in REBUILD_KEYS if k in info}}   # a skipped grid's info has none
    (Path(models_dir) / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))


@dataclass(frozen=True)
class Selection:
    """How 04 chose its model: ``fraction`` of the train split's groups held out with ``seed``, and the chosen
    row's mean F1 on them -- what a later step needs to compare another model on the same groups."""

    fraction: float
    seed: int
    score: float

    def held_out(self, train: pd.DataFrame) -> np.ndarray:
        """Boolean mask of the rows of ``train`` (the split 04 trained on) in the selection groups."""
        return holdout_groups(train, self.fraction, self.seed)


@dataclass(frozen=True)
class StoredFinetune:
    """04's record in a models folder: what it trained, what it chose on which groups, and each row's files.

    Methods taking ``name`` default to the chosen row and raise FileNotFoundError listing the stored rows
    for a name that is not one of them.
    """

    path: Path      # finetune.json
    summary: dict   # its content

    @property
    def trained(self) -> bool:
        """04 trained models (it records "skipped", with no chosen row, when too few images exist)."""
        return bool(self.summary.get("best"))

    @property
    def chose_finetuned(self) -> bool:
        """Selection picked a fine-tuned row, not the pretrained backbone's (0 epochs)."""
        return bool((self.summary.get("best") or {}).get("epochs"))

    @property
    def selection(self) -> Selection | None:
        """How the chosen row was selected; None when the record predates that (or the grid was skipped)."""
        info = self.summary.get("info") or {}
        if "selection_fraction" not in info:
            return None
        return Selection(info["selection_fraction"], info["seed"], float(self.summary["best"]["selection_mean_f1"]))

    @property
    def fit_groups(self) -> list[int] | None:
        """The label groups the models trained on (a matcher fit must not tune on them); None: an older record."""
        return (self.summary.get("info") or {}).get("fit_groups")

    def _row(self, name: str | None) -> dict:
        """The summary's row for ``name`` (default: the selected model), or a clear error listing what is there."""
        name = name or self.summary["best"]["model"]
        rows = {row["model"]: row for row in self.summary["rows"]}
        if name not in rows:
            raise FileNotFoundError(f"no fine-tuned model {name!r} in {self.path.parent}; stored: {sorted(rows)}")
        return {**rows[name], **{k: self.summary[k] for k in REBUILD_KEYS}}

    def embedder_file(self, name: str | None = None) -> Path:
        """The row's embedder.keras: trunk features -> embedding (:func:`backbone_from_embedder` takes it)."""
        return _row_dir(self.path.parent, self._row(name)["model"]) / EMBEDDER_FILE

    def embeddings(self, name: str | None = None) -> tuple[str, ImageSignal]:
        """(model name, its stored train/test embeddings): no recompute for the model as 04 trained it."""
        row = self._row(name)
        name, folder = row["model"], _row_dir(self.path.parent, row["model"])
        signal = ImageSignal(name, row["weights"])
        for split in ("train", "test"):
            signal.embeddings[split] = Embeddings(vectors=np.load(folder / f"{split}.npy", allow_pickle=False),
                                                  status=np.load(folder / f"{split}_status.npy", allow_pickle=False))
        return name, signal

    def spec(self, name: str | None = None) -> dict:
        """What rebuilds the stored model anywhere: model, backbone, image_size, cut_layer, weights and the
        embedder file's hash (:func:`backbone_from_embedder` takes it with the embedder.keras file)."""
        row = self._row(name)
        return {k: row[k] for k in ("model", *REBUILD_KEYS, "weights")} | {
            "embedder_sha1": hashlib.sha1(self.embedder_file(row["model"]).read_bytes()).hexdigest()}

    def backbone(self, name: str | None = None) -> Backbone:
        """The stored model as a whole image -> embedding Backbone (pretrained trunk + trained tail)."""
        return backbone_from_embedder(self.embedder_file(name), self._row(name))


def stored_finetune(models_dir: str | Path) -> StoredFinetune:
    """04's record in ``models_dir``; FileNotFoundError (its ``filename`` the missing finetune.json) when the grid
    never wrote one there."""
    path = Path(models_dir) / SUMMARY_FILE
    if not path.exists():
        missing = FileNotFoundError(f"{path} not found: run finetune_grid(..., models_dir={str(models_dir)!r}) first")
        missing.filename = str(path)
        raise missing
    return StoredFinetune(path, json.loads(path.read_text()))


def backbone_from_embedder(embedder_file: str | Path, spec: dict) -> Backbone:
    """Pretrained trunk of ``spec["backbone"]`` cut at ``spec["cut_layer"]`` + the trained tail in ``embedder_file``
    (a row's own, or the copy a saved matcher carries).

    The tail is rebuilt by the code that trained it and only its weights are read from the file: the file's model
    config is never deserialised, so an embedder file shared in a matcher runs no code of its own, whatever safe
    mode the installed Keras has (``.keras`` loading had safe-mode bypasses up to Keras 3.13)."""
    embedder_file = Path(embedder_file)
    base = load_backbone(spec["backbone"], input_size=spec["image_size"])
    trunk, tail = split_backbone(base.model, spec["cut_layer"])
    # the embedder of either head (the head is not part of it) with the pretrained weights, then the trained ones
    _, embedder, _ = build_models(tail, [], "softmax", 1, arcface_scale=1.0, arcface_margin=0.0)
    embedder.load_weights(embedder_file)
    model = keras.Model(trunk.input, embedder(trunk.output), name=spec["model"])
    # the file's hash in the weights string keeps embedding caches of different trainings apart
    digest = hashlib.sha1(embedder_file.read_bytes()).hexdigest()[:12]
    return Backbone(spec["model"], model, base.input_size, int(model.output_shape[-1]), f"{spec['weights']} [{digest}]")
