"""Files and folders that survive being killed midway and being written by two processes at once.

A file or folder is written under a fresh hidden name beside it (``.<name>.<random>.tmp``), then renamed over the
old one in one step: a reader sees the old version or the new one, never half of one; two writers each write their
own and the last rename wins whole; a killed write leaves the old version and a hidden temporary that the next write
beside it clears once it is a day old. A read-modify-write (metrics.json, the leaderboard) also holds its file's
:func:`lock_for`, so no update is lost.
"""

from __future__ import annotations

import errno
import glob
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TEMP_SUFFIX = ".tmp"
STALE_SECONDS = 24 * 3600
"""A temporary this old is a killed write's (a write takes seconds to minutes): the next write beside it clears it."""
_UMASK = os.umask(0o022)
os.umask(_UMASK)        # read once: mkstemp/mkdtemp create owner-only files, a shared runs/ needs the usual mode


def _temporary_name(path: Path, suffix: str = "") -> dict:
    """mkstemp/mkdtemp arguments for a unique hidden sibling of ``path``, on its file system (so the rename is one
    step); stale ones of earlier killed writes are cleared first."""
    prefix = f".{path.name}."
    now = time.time()
    for stale in path.parent.glob(f"{glob.escape(prefix)}*{TEMP_SUFFIX}{suffix}"):
        try:
            if now - stale.lstat().st_mtime < STALE_SECONDS:
                continue
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink()
        except OSError:                 # another writer cleared it first
            pass
    return {"prefix": prefix, "suffix": TEMP_SUFFIX + suffix, "dir": path.parent}


@contextmanager
def replaced_file(path: str | Path) -> Iterator[Path]:
    """A fresh hidden file beside ``path`` to write (it keeps ``path``'s suffix, so ``np.savez`` adds none), which then
    replaces ``path`` in one rename; on an error it is removed and ``path`` is left as it was."""
    path = Path(path)
    fd, name = tempfile.mkstemp(**_temporary_name(path, path.suffix))
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`replaced_file`)."""
    with replaced_file(path) as tmp:
        tmp.write_text(text)
    return Path(path)


@contextmanager
def replaced_folder(folder: str | Path) -> Iterator[Path]:
    """A fresh hidden folder beside ``folder`` to write into, which then replaces ``folder`` as a whole.

    A run killed while writing leaves the old folder (or none), never a half-written one (a 96-byte weights file
    used to fail every later fit); two writers never mix their files, nor fail on each other's folder.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(**_temporary_name(folder)))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        _swap_in(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(tmp: Path, folder: Path) -> None:
    """Rename ``tmp`` to ``folder``. A rename cannot replace a folder that holds files, so a present one is first
    renamed aside and deleted; when another writer swaps its own folder in meanwhile, this one is tried again, so
    the last writer's folder stands, whole."""
    while True:
        try:
            os.replace(tmp, folder)
            return
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        aside = Path(tempfile.mkdtemp(**_temporary_name(folder, ".old")))
        try:
            os.replace(folder, aside)   # onto the empty folder mkdtemp made: one rename
        except FileNotFoundError:       # another writer moved it aside first
            aside.rmdir()
            continue
        shutil.rmtree(aside, ignore_errors=True)


def lock_for(path: str | Path):
    """An inter-process lock (a ``filelock.FileLock``) on ``path``, kept in the hidden ``.<name>.lock`` beside it.

    The operating system releases it when its process dies, so a killed writer never blocks the next one. The lock
    file stays (deleting it would let two processes hold two different files)."""
    from filelock import FileLock      # imported here: only writers of shared folders need it, not a Kaggle inference

    path = Path(path)
    return FileLock(path.parent / f".{path.name}.lock")
