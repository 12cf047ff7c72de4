"""Atomic writes (samesame.core.files): unique temporaries, nothing half-written, two writers side by side."""

import multiprocessing
import os
import time

import numpy as np
import pytest
import side_by_side

from samesame.core.files import STALE_SECONDS, replaced_file, replaced_folder, write_text


def _hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path):
    path = write_text(tmp_path / "metrics.json", "old")
    with pytest.raises(KeyError):
        with replaced_file(path) as tmp:
            tmp.write_text("half")
            raise KeyError("killed midway")
    assert path.read_text() == "old" and _hidden(tmp_path) == []
    with replaced_file(tmp_path / "w.npz") as first, replaced_file(tmp_path / "w.npz") as second:
        assert first != second and first.parent == tmp_path and first.name.startswith(".w.npz.")
        np.savez(first, a=np.ones(2))        # keeps the .npz suffix: np.savez adds none
        np.savez(second, a=np.zeros(2))
    assert np.load(tmp_path / "w.npz")["a"].tolist() == [1, 1] and _hidden(tmp_path) == []   # the last rename wins
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == 0o666 & ~umask     # as open() would make it, not mkstemp's 0600


def test_a_killed_write_leaves_the_old_file_and_a_hidden_temporary_cleared_once_stale(tmp_path):
    path = write_text(tmp_path / "params.yaml", "old")
    child = multiprocessing.get_context("spawn").Process(target=side_by_side.write_then_die, args=(path,))
    child.start()
    child.join()
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [
        "params.yaml"]
    (stray,) = [tmp_path / name for name in _hidden(tmp_path)]
    write_text(path, "new")                  # a fresh stray may be another writer's: kept
    assert stray.exists()
    os.utime(stray, (time.time() - STALE_SECONDS - 1,) * 2)
    write_text(path, "newer")
    assert not stray.exists() and path.read_text() == "newer"


def test_two_writers_of_one_folder_never_fail_nor_mix_their_files(tmp_path):
    folder = tmp_path / "matcher"
    spawn = multiprocessing.get_context("spawn")
    writers = [spawn.Process(target=side_by_side.write_folders, args=(folder, w, 40)) for w in "xy"]
    for w in writers:
        w.start()
    snapshots = []
    while any(w.is_alive() for w in writers):
        snapshots.append(_snapshot(folder))
    for w in writers:
        w.join()
        assert w.exitcode == 0               # no FileExistsError nor "Directory not empty"
    assert sorted(os.listdir(folder)) == ["a", "b", "c"] and len(_snapshot(folder)) == 1
    assert all(len(texts) <= 1 for texts in snapshots)      # one writer's files, never two writers' mixed
    assert _hidden(tmp_path) == []


def _snapshot(folder) -> set[str]:
    """The texts of one folder's files, read through that very folder (not its path, which a swap repoints)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except FileNotFoundError:                # between moving the old folder aside and renaming the new one in
        return set()
    texts = set()
    try:
        for name in os.listdir(fd):
            try:
                with open(os.open(name, os.O_RDONLY, dir_fd=fd)) as f:
                    texts.add(f.read())
            except FileNotFoundError:        # a folder moved aside is being deleted
                pass
    finally:
        os.close(fd)
    return texts
