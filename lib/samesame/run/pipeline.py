"""Run the numbered notebooks in order with papermill, into one recorded run folder.

``python -m samesame.run.pipeline run --profile sample --run R [--data-dir D] [--only 02_phash]``
is what ``make all`` calls. configs/base.yaml holds every setting of a run, a profile
overrides a few (:mod:`samesame.run.settings` checks every key before anything runs); each
notebook receives the profile, the data folder and its run folder, and loads the same
settings. The executed notebooks are the record, with params.yaml saying how they were run
(the settings, command, commit, machine, wall time); a failing one stays in the run folder
and stops the pipeline with a non-zero exit.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import papermill as pm
from traitlets.config import Config

from samesame.data.listings import DataError, Dataset, check_data_dir, load_dataset
from samesame.run import settings
from samesame.run.runs import Run, RunError, check_writable, machine, run_folder, update_leaderboard, writing
from samesame.run.settings import REPO, ConfigError, Settings

RUNS_ROOT = REPO / "runs"
NOTEBOOKS_DIR = REPO / "notebooks"
PARAMETERS = ("profile", "data_dir", "run_dir")
"""What the pipeline passes to every notebook's ``parameters`` cell (the cell also has ``overrides``)."""


NEEDS_TEST_CSV = ("07_submission",)
"""The notebooks that need the data folder's test.csv (a submission lists every test listing)."""


def execute_notebook(notebook: Path, out: Path, parameters: dict, cwd: Path) -> None:
    """Execute ``notebook`` into ``out`` with papermill, its kernel reached over Unix sockets in a private temporary
    folder where the OS has them: over TCP, every listener on this host could read the cells and outputs (ipykernel
    warns so on every start); the folder and its sockets are removed when the kernel stops."""
    with tempfile.TemporaryDirectory(prefix="samesame-kernel-") as sockets:
        config = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "k")}}) \
            if os.name == "posix" else Config()
        pm.execute_notebook(str(notebook), str(out), parameters=parameters, cwd=str(cwd), kernel_name="python3",
                            progress_bar=False, log_output=False, config=config)


def notebooks(only: list[str] | None = None, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks in order (those named by ``only``, if given, matched by prefix)."""
    found = sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    if only is None:
        return found
    if not only or not all(name.strip() for name in only):   # "" is a prefix of every notebook
        raise SystemExit(f"--only {only}: an empty notebook name; name notebooks or prefixes, e.g. --only 02_phash")
    chosen = [nb for nb in found if any(nb.stem == o or nb.stem.startswith(o) for o in only)]
    if not chosen:
        raise SystemExit(f"no notebook matches {only}; have {[nb.stem for nb in found]}")
    return chosen


def resolve_data_dir(cfg: Settings, data_dir: str | None) -> Path:
    """The data folder to run on (DATA_DIR, checked: a folder holding train.csv, else the profile's); the embedded
    sample is generated on first use."""
    if data_dir:
        return check_data_dir(Path(data_dir).resolve())
    if not (cfg.data_dir / "train.csv").exists():
        ensure_sample(cfg)
    return cfg.data_dir


def check_inputs(cfg: Settings, chosen: list[Path | str] = ()) -> Dataset:
    """Every check that needs no fitting, before any notebook or fit runs: the cache folder can be written and holds
    folders where it keeps them, cfg.data_dir's csv files load (ids, test_solution.csv against test.csv), and
    test.csv is there when a ``chosen`` notebook (a path or a name) needs it. A saved matcher is thus never refitted (and replaced) by a
    run that would then stop on its inputs. Returns the loaded data."""
    check_cache_dir(cfg.cache_dir)
    needing = [Path(nb).stem for nb in chosen if Path(nb).stem in NEEDS_TEST_CSV]
    if needing and not (cfg.data_dir / "test.csv").is_file():
        raise DataError(f"{cfg.data_dir / 'test.csv'} not found: {needing[0]} writes a submission of every test "
                        "listing; put the competition's test.csv there (make data), or run the other notebooks only")
    return load_dataset(cfg.data_dir)


def check_cache_dir(cache_dir: Path | None) -> None:
    """RunError naming the path and the fix unless ``cache_dir`` is (or can be made) a writable folder whose entries
    are folders or .npz files: an embedding or title-encoder cache is a folder, so a file in its place (or a
    cache_dir that is a file) would fail the first embedding, minutes into a run."""
    if cache_dir is None:
        return
    check_writable(cache_dir, "set cache_dir to another folder")
    if not cache_dir.is_dir():
        return
    for entry in cache_dir.iterdir():
        if not entry.name.startswith(".") and entry.is_file() and entry.suffix != ".npz":
            raise RunError(f"{entry} is a file where the cache keeps a folder: delete it (or make clean-cache)")


def ensure_sample(cfg: Settings) -> None:
    """Generate the synthetic Kaggle-layout sample into the profile's data_dir (deterministic per profile); a
    data_dir holding anything but a sample the project generated is refused, with nothing written."""
    from samesame.data.sample import generate_sample

    print(f"generating the embedded sample into {cfg.data_dir} ...", flush=True)
    try:
        summary = generate_sample(cfg.data_dir, **dataclasses.asdict(cfg.sample))
    except FileExistsError as err:      # a profile's data_dir that is someone's folder: never written into
        raise DataError(f"{err} (the profile's data_dir)") from None
    print(f"sample ready: {summary}", flush=True)


def profile_arg(profile: str) -> str:
    """The profile as the notebooks get it: a name, or a path to a .yaml file made absolute (they run in
    notebooks/)."""
    return str(settings.profile_path(profile).resolve()) if profile.endswith((".yaml", ".yml")) else profile


def shown_command(verb: str, profile_name: str, run_name: str, data_dir: str | None,
                  only: list[str] | None = None) -> str:
    """The command a run records, as a reader can repeat it: the profile by name (:func:`settings.profile_shown`)
    and a real-data folder as the user's own, never this machine's paths."""
    return (f"python -m samesame.run.pipeline {verb} --profile {settings.profile_shown(profile_name)} --run {run_name}"
            + (" --data-dir <your Kaggle folder>" if data_dir else "") + (f" --only {' '.join(only)}" if only else ""))


def git_commit() -> str:
    """The checked-out commit, with "-dirty" when tracked files differ from it (the run is then not reproducible)."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@contextmanager
def resources_used(interval: float = 0.5) -> Iterator[dict]:
    """Sample this process and every child (papermill's kernel) while the block runs; the yielded dict then holds
    ``peak_rss_gb`` (the peak of their summed resident memory, GiB) and ``cpu_seconds`` (their CPU time, user +
    system, since the block began). Sampled, because a kernel's own peak (``ru_maxrss``) is known only once it has
    exited, and only as a maximum over every child so far. CPU time reads the same whether or not something else
    ran beside the step; wall time does not."""
    import psutil

    me, result, done = psutil.Process(), {"peak_rss_gb": 0.0, "cpu_seconds": 0.0}, threading.Event()
    cpu: dict[int, float] = {}                      # pid -> CPU seconds last seen (an exited child keeps its last)

    def measure() -> int:
        """Record each process's CPU time; return their summed resident memory."""
        total = 0
        for proc in (me, *me.children(recursive=True)):
            try:
                with proc.oneshot():
                    total += proc.memory_info().rss
                    times = proc.cpu_times()
                    cpu[proc.pid] = times.user + times.system
            except psutil.Error:        # a child that exited between the listing and the reading
                pass
        return total

    measure()
    baseline = dict(cpu)
    peak = 0

    def sample() -> None:
        nonlocal peak
        while not done.wait(interval):
            peak = max(peak, measure())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        done.set()
        thread.join()
        peak = max(peak, measure())
        result["peak_rss_gb"] = round(peak / 2**30, 2)
        result["cpu_seconds"] = round(sum(cpu.values()) - sum(baseline.values()), 1)


def run_notebooks(profile_name: str, run_name: str | None = None, data_dir: str | None = None,
                  only: list[str] | None = None, runs_root: Path = RUNS_ROOT, check_only: bool = False) -> Run | None:
    """Execute the notebooks into runs/<run_name>/ and record params, metrics and the leaderboard.

    params.yaml keeps the wall time, CPU time and peak memory of notebooks run earlier into the same folder
    (``--only``), so a run assembled in parts still records what each notebook took. The settings, the notebooks
    named, the run folder, DATA_DIR and what the notebooks need (:func:`check_inputs`) are checked before anything
    is written; ``check_only`` stops there. The run is held while its notebooks write it (:func:`writing`).
    """
    os.environ.setdefault("TQDM_MININTERVAL", "5")   # progress bars in the executed notebooks: one line per 5 s
    cfg = settings.load(profile_name)                # every key checked before anything runs
    chosen = notebooks(only)
    path = run_folder(runs_root, run_name or dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    cfg = dataclasses.replace(cfg, data_dir=resolve_data_dir(cfg, data_dir))
    check_inputs(cfg, chosen)
    if check_only:
        print(f"checked: {', '.join(nb.stem for nb in chosen)} can run into {path} on {cfg.data_dir}", flush=True)
        return None
    command = shown_command("run", profile_name, path.name, data_dir, only)
    with writing(path, command) as run:
        _execute(run, chosen, profile_name, command, cfg, runs_root, resume=only is None)
    print(f"run recorded in {run.path}", flush=True)
    return run


def fingerprint(nb: Path, cfg: Settings, commit: str) -> str:
    """What a notebook's executed copy depends on: its source, every setting (the data folder too) and the commit."""
    digest = hashlib.sha256(nb.read_bytes())
    digest.update(json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode())
    digest.update(commit.encode())
    return digest.hexdigest()[:16]


def _execute(run: Run, chosen: list[Path], profile_name: str, command: str, cfg: Settings, runs_root: Path,
             resume: bool = False) -> None:
    """Run ``chosen`` into ``run`` with papermill, recording each notebook's wall time, CPU time and peak memory.

    ``resume`` (``make all``): the leading notebooks that finished earlier in this run with the same source, settings
    and commit are kept, so a long run that was stopped goes on where it stopped (their caches are kept anyway);
    from the first one that runs, every later one runs too, since it reads what the earlier ones wrote."""
    params = {"profile": profile_arg(profile_name), "data_dir": str(cfg.data_dir), "run_dir": str(run.path.resolve())}
    record = {"profile": settings.profile_shown(profile_name), "command": command, "commit": git_commit(),
              "machine": machine(),
              "started": dt.datetime.now().isoformat(timespec="seconds"),
              "wall_seconds": run.params().get("wall_seconds", {}),
              "cpu_seconds": run.params().get("cpu_seconds", {}), "peak_rss_gb": run.params().get("peak_rss_gb", {}),
              "finished": run.params().get("finished", {}),
              "data_dir": str(cfg.data_dir),
              "settings": cfg.to_dict()}
    run.write_params(record)
    for nb in chosen:
        out, mark = run.path / nb.name, fingerprint(nb, cfg, record["commit"])
        if resume and record["finished"].get(nb.stem) == mark and out.is_file():
            print(f"[{nb.stem}] finished earlier in this run with the same notebook, settings and commit: kept "
                  "(its own make target reruns it)", flush=True)
            continue
        resume = False
        record["finished"].pop(nb.stem, None)
        print(f"[{nb.stem}] -> {out}", flush=True)
        started = time.perf_counter()
        try:
            with resources_used() as used:
                execute_notebook(nb, out, params, nb.parent)
            record["finished"][nb.stem] = mark
        except pm.PapermillExecutionError as err:
            raise SystemExit(f"[{nb.stem}] failed in cell {err.exec_count}: {err.ename}: {err.evalue}\n"
                             f"read the failing cell in {out}") from None
        finally:
            record["wall_seconds"][nb.stem] = round(time.perf_counter() - started, 1)
            record["cpu_seconds"][nb.stem] = used["cpu_seconds"]
            record["peak_rss_gb"][nb.stem] = used["peak_rss_gb"]
            run.write_params(record)
            update_leaderboard(run, runs_root)


def fit_run(profile_name: str, run_name: str, data_dir: str | None = None, runs_root: Path = RUNS_ROOT) -> Path:
    """``make fit``: fit the matcher on all of train.csv and save it to runs/<RUN>/models/matcher/, after every check
    that needs no fitting (:func:`check_inputs`, the run's image model from 03-05), so a saved matcher is replaced only
    by a fit that can finish. The run is held while the fit writes it (:func:`writing`)."""
    from samesame.image.embed import configure_accelerator
    from samesame.run.artefacts import image_model_spec, matcher_path
    from samesame.run.matcher import fit_and_save, fit_summary

    cfg = settings.load(profile_name)
    path = run_folder(runs_root, run_name)
    cfg = dataclasses.replace(cfg, data_dir=resolve_data_dir(cfg, data_dir))
    ds = check_inputs(cfg)
    command = shown_command("fit", profile_name, run_name, data_dir)
    with writing(path, command) as run:
        if cfg.image.in_fusion:
            image_model_spec(run, cfg.image.image_size)     # 03-05's files, or which make target builds them
        print("device:", configure_accelerator(cfg.precision), flush=True)
        with resources_used() as used:
            matcher = fit_and_save(run, cfg, ds.train, len(ds.test))
        run.record("fit", {**fit_summary(matcher), "command": command, "commit": git_commit(), "machine": machine(),
                           **used})
    print(f"matcher {matcher.name} fitted in {matcher.info['fit_seconds']} s -> {matcher_path(run)}", flush=True)
    return matcher_path(run)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="samesame", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="execute the notebooks into runs/<RUN>/")
    run_p.add_argument("--profile", default="sample", help="configs/<name>.yaml, or a path to a .yaml file")
    run_p.add_argument("--run", default=None, help="run name (default: a timestamp)")
    run_p.add_argument("--data-dir", default=None, help="Kaggle-layout folder (default: the profile's sample)")
    run_p.add_argument("--only", nargs="+", default=None, help="notebook names or prefixes, e.g. 02_phash")
    run_p.add_argument("--check", action="store_true",
                       help="check the settings, RUN, the data and what the notebooks need, then stop")
    fit_p = sub.add_parser("fit", help="fit the matcher on train.csv -> runs/<RUN>/models/matcher/")
    fit_p.add_argument("--profile", default="sample")
    fit_p.add_argument("--run", required=True)
    fit_p.add_argument("--data-dir", default=None)
    sample_p = sub.add_parser("sample", help="generate the embedded sample of a profile")
    sample_p.add_argument("--profile", default="sample")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            run_notebooks(args.profile, args.run, args.data_dir, args.only, check_only=args.check)
        elif args.command == "fit":
            fit_run(args.profile, args.run, args.data_dir)
        else:
            ensure_sample(settings.load(args.profile))
    except ConfigError as err:
        raise SystemExit(f"config error: {err}") from None
    except (DataError, RunError) as err:             # one line with the fix, no traceback
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main(sys.argv[1:])
