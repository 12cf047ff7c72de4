"""Saved folders that survive being killed midway: written beside the old one, then swapped in whole."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def replaced_folder(folder: str | Path) -> Iterator[Path]:
    """A fresh sibling ``<folder>.tmp`` to write into, which then replaces ``folder`` as a whole.

    A run killed while writing leaves the old folder (or none) and a stray ``.tmp`` that the next
    write clears, never a half-written folder (a 96-byte weights file used to fail every later fit).
    """
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    yield tmp
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
