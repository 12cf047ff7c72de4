"""The run folder: what a run produced, in one place, comparable across runs.

``runs/<RUN>/`` holds the executed notebooks, ``params.yaml`` (how it was run: command,
commit, machine, wall time per notebook, every parameter), ``figures/``, ``models/``,
``submission.csv`` and ``metrics.json`` (one object per notebook).
``runs/leaderboard.csv`` has one row per (run, notebook, metric) over all runs.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import yaml

from samesame.core.files import lock_for, replaced_file, write_text

METRICS_FILE = "metrics.json"
PARAMS_FILE = "params.yaml"
LEADERBOARD_FILE = "leaderboard.csv"
RUN_NAME = re.compile(r"[A-Za-z0-9][\w.-]*")
MAX_RUN_NAME = 100
"""The longest RUN name: a file name holds at most 255 bytes, and the run's own files add to its paths."""


class RunError(ValueError):
    """A run folder that cannot be used: a name that leaves runs/, or a place that cannot be written."""


def run_folder(runs_root: str | Path, name: str) -> Path:
    """``runs_root/name``, checked before any work starts (creates nothing): ``name`` is a plain folder name
    (``../x`` wrote outside runs/), and the run, its models/ and figures/ can be written there (a read-only
    runs/ failed as a bare PermissionError, a read-only models/ only after the fit)."""
    if not RUN_NAME.fullmatch(name):
        raise RunError(f"RUN={name!r} is not a plain folder name: a run lives in runs/<RUN>/; use letters, digits, "
                       "'-', '_' and '.', starting with a letter or digit")
    if len(name) > MAX_RUN_NAME:
        raise RunError(f"RUN={name[:20]}... is {len(name)} characters long: choose a name of at most {MAX_RUN_NAME}")
    path = Path(runs_root) / name
    for folder in (path, path / "models", path / "figures"):
        check_writable(folder, "choose another RUN")
    return path


def check_writable(folder: Path, alternative: str) -> None:
    """Raise RunError unless ``folder`` exists as a writable folder, or its nearest existing parent is one;
    ``alternative`` ends the fix (e.g. "choose another RUN")."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise RunError(f"{existing} is a file, so {folder} cannot be a folder: move the file away or {alternative}")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise RunError(f"{existing} cannot be written ({err.strerror}): make it writable, or {alternative}")


@contextmanager
def writing(path: Path, command: str) -> Iterator["Run"]:
    """The run at ``path`` (a :func:`run_folder`), held by this process while the block writes it: a second command
    on the same run stops at once with one line naming this one (its pid and ``command``). The lock is the operating
    system's, so a killed command leaves none behind. A run folder this block created and left without a file (a
    fit that failed before writing) is removed."""
    lock, holder = lock_for(path), path.with_name(f".{path.name}.holder")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        lock.acquire(timeout=0)
    except TimeoutError:                # filelock's Timeout
        raise RunError(f"{path.parent.name}/{path.name} is being written by {_holder(holder)}; wait for it or "
                       "choose another RUN") from None
    fresh = not path.exists()
    try:
        write_text(holder, json.dumps({"pid": os.getpid(), "command": command}))
        yield Run(path)
    except BaseException:
        if fresh and not any(p.is_file() for p in path.rglob("*")):
            shutil.rmtree(path, ignore_errors=True)
        raise
    finally:
        holder.unlink(missing_ok=True)
        lock.release()


def _holder(holder: Path) -> str:
    """The command holding a run, as its side file says ("another command" while it has not written it yet)."""
    try:
        found = json.loads(holder.read_text())
        return f"pid {found['pid']} ({found['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another command"


def plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars/arrays to Python, NaN to None, keys to str, typed values via to_dict()."""
    if hasattr(value, "to_dict") and callable(value.to_dict) and not isinstance(value, (pd.DataFrame, pd.Series)):
        value = value.to_dict()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


class Run:
    """Handle on one run folder, used by every notebook to record what it found."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        for sub in ("figures", "models"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)

    @property
    def name(self) -> str:
        return self.path.name

    def metrics(self) -> dict:
        """Everything recorded so far ({} for a fresh run)."""
        f = self.path / METRICS_FILE
        return json.loads(f.read_text()) if f.exists() else {}

    def record(self, notebook: str, metrics: dict) -> dict:
        """Merge ``metrics`` into this notebook's object in metrics.json (under its lock, written atomically: two
        writers lose no update, a reader never sees half a file)."""
        with lock_for(self.path / METRICS_FILE):
            all_metrics = self.metrics()
            all_metrics.setdefault(notebook, {}).update(plain(metrics))
            write_text(self.path / METRICS_FILE, json.dumps(all_metrics, indent=2, sort_keys=False))
        return all_metrics[notebook]

    def params(self) -> dict:
        """The run record (params.yaml) or {} when the pipeline has not written one."""
        f = self.path / PARAMS_FILE
        return (yaml.safe_load(f.read_text()) or {}) if f.exists() else {}

    def write_params(self, record: dict) -> None:
        """Rewrite params.yaml (atomic, keys in the given order)."""
        write_text(self.path / PARAMS_FILE, yaml.safe_dump(plain(record), sort_keys=False, allow_unicode=True))

    def figure_path(self, name: str) -> Path:
        return self.path / "figures" / f"{name}.png"

    def save_figure(self, fig, name: str) -> Path:
        """Write a matplotlib figure to figures/<name>.png (and keep showing it in the notebook)."""
        path = self.figure_path(name)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        return path


def machine() -> str:
    """This machine in words (OS, CPU cores and the flags that pick a path, memory, GPUs, Python), so a run's
    wall time can be read."""
    from samesame.core.cpu import cpu_summary

    cpu = cpu_summary()
    flags = [f for f in ("avx2", "avx512f") if cpu[f]] + cpu["int8_units"] + cpu["bf16_units"]
    parts = [f"{platform.system()} {platform.machine()}", f"{os.cpu_count()} CPU cores ({' '.join(flags) or 'no AVX2'})"]
    try:
        parts.append(f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM")
    except (ValueError, OSError, AttributeError):
        pass
    if shutil.which("nvidia-smi"):
        gpus = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip().splitlines()
        parts.append(", ".join(g.split(" (UUID")[0] for g in gpus) or "no GPU")
    else:
        parts.append("no GPU")
    return ", ".join(parts) + f", Python {platform.python_version()}"


def flatten_metrics(metrics: dict, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}, keeping numbers and strings (lists are skipped)."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, name + "."))
        elif isinstance(value, (int, float, str, bool)) and value is not None:
            flat[name] = value
    return flat


def update_leaderboard(run: Run, runs_root: str | Path) -> pd.DataFrame:
    """Rewrite this run's rows of runs/leaderboard.csv from its metrics.json, under the leaderboard's lock (runs
    side by side lose no row) and atomically (a reader never sees half a file)."""
    board_path = Path(runs_root) / LEADERBOARD_FILE
    with lock_for(board_path):
        rows = [
            {"run": run.name, "notebook": notebook, "metric": metric, "value": value}
            for notebook, values in run.metrics().items()
            for metric, value in flatten_metrics(values).items()
        ]
        board = (pd.read_csv(board_path, dtype={"run": str}) if board_path.exists()
                 else pd.DataFrame(columns=["run", "notebook", "metric", "value"]))
        board = pd.concat([board[board["run"] != run.name], pd.DataFrame(rows)], ignore_index=True)
        with replaced_file(board_path) as tmp:
            board.to_csv(tmp, index=False)
    return board
