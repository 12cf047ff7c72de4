"""What the side-by-side tests run in other processes (spawned: this module imports only what they need)."""

import os

from samesame.core.files import replaced_file, replaced_folder
from samesame.run.runs import Run, update_leaderboard, writing


def record_and_rank(run_dir, runs_root, writer, times):
    """``times`` metrics records into one run, each followed by a leaderboard update."""
    run = Run(run_dir)
    for i in range(times):
        run.record(f"{writer}{i}", {"f1": i / times})
        update_leaderboard(run, runs_root)


def hold_run(path, command, held, release):
    """Hold the run at ``path`` as ``command`` until ``release`` is set (or the process is killed)."""
    with writing(path, command):
        held.set()
        release.wait(60)


def write_folders(folder, writer, times):
    """Replace ``folder`` ``times`` times with three files that all name this writer and the round."""
    for i in range(times):
        with replaced_folder(folder) as tmp:
            for name in "abc":
                (tmp / name).write_text(f"{writer}-{i}")


def write_then_die(path):
    """Killed midway through a write: no cleanup runs."""
    with replaced_file(path) as tmp:
        tmp.write_text("half")
        os._exit(1)
