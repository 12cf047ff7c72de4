"""A saved title encoder's files: each read with its failure named, and all checked against the SHA-256s they
were saved with (``manifest.json``), so that an edited ``config.json`` (another ``max_len``: other match sets) or
weights from another fit are refused instead of loaded as the encoder that was fitted."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np

MANIFEST = "manifest.json"


class BrokenEncoderError(ValueError):
    """A saved title encoder's folder is missing, lacks a file or holds a damaged one; ``path`` says which."""

    def __init__(self, folder: Path, reason: str, file: str | None = None):
        self.path, self.reason = folder / file if file else folder, reason
        super().__init__(f"{self.path}: cannot load the saved title encoder ({reason}). Refit it (make fit), or "
                         f"delete {folder} and run again so that it is retrained")


def read_part(folder: Path, file: str, read):
    """``read(folder / file)``, any failure turned into a :class:`BrokenEncoderError` naming the file."""
    try:
        return read(folder / file)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise BrokenEncoderError(folder, f"{type(err).__name__}: {err}", file) from err


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(folder: Path, files: Sequence[str]) -> None:
    """Record the SHA-256 of each of ``files`` (just written into ``folder``) in its manifest."""
    (folder / MANIFEST).write_text(json.dumps({file: _sha256(folder / file) for file in files}, indent=1))


def check_manifest(folder: Path, files: Sequence[str]) -> None:
    """Raise :class:`BrokenEncoderError` naming the first of ``files`` whose bytes are not those it was saved with
    (a folder saved before manifests existed has none, and cannot show it is unchanged: refit)."""
    saved = read_part(folder, MANIFEST, lambda path: json.loads(path.read_text()))
    for file in files:
        if not isinstance(saved, dict) or saved.get(file) != _sha256(folder / file):
            raise BrokenEncoderError(folder, f"its bytes differ from those saved with the encoder (SHA-256 in "
                                     f"{MANIFEST}): edited, or from another fit; restore it as saved", file)


def parse_training(path: Path) -> dict:
    """training.json with its loss and epoch times; ``centre`` as a finite float32 vector or None."""
    training = json.loads(path.read_text())
    if not isinstance(training, dict):
        raise ValueError(f"a JSON object with loss, epoch_seconds and centre expected, got {training!r}")
    missing = [k for k in ("loss", "epoch_seconds") if k not in training]
    if missing:
        raise KeyError(f"no {missing}")
    centre = training.get("centre")
    if centre is not None:
        centre = np.asarray(centre, dtype=np.float32)
        if centre.ndim != 1 or not np.isfinite(centre).all():
            raise ValueError("centre is not a vector of finite numbers")
    return {**training, "centre": centre}
