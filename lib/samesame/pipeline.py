"""Run the numbered notebooks in order with papermill, into one recorded run folder.

``python -m samesame.pipeline run --profile sample --run R [--data-dir D] [--only 02_phash]``
is what ``make all`` calls. configs/base.yaml holds every parameter of a run, a profile
overrides a few (:mod:`samesame.config` checks every key); each notebook receives the
ones its ``parameters`` cell declares. The executed notebooks are the record, with
params.yaml saying how they were run (command, commit, machine, wall time); a failing
one stays in the run folder and stops the pipeline with a non-zero exit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import papermill as pm

from .config import NOTEBOOKS_DIR, REPO, ConfigError, load_profile
from .runs import Run, machine, update_leaderboard

RUNS_ROOT = REPO / "runs"


def notebooks(only: list[str] | None = None, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks in order (those named by ``only``, if given, matched by prefix)."""
    found = sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return found
    chosen = [nb for nb in found if any(nb.stem == o or nb.stem.startswith(o) for o in only)]
    if not chosen:
        raise SystemExit(f"no notebook matches {only}; have {[nb.stem for nb in found]}")
    return chosen


def resolve_data_dir(profile: dict, data_dir: str | None) -> Path:
    """The data folder to run on; the embedded sample is generated on first use."""
    if data_dir:
        return Path(data_dir).resolve()
    path = (REPO / profile.get("data_dir", "data/sample")).resolve()
    if not (path / "train.csv").exists():
        ensure_sample(path, profile)
    return path


def ensure_sample(path: Path, profile: dict) -> None:
    """Generate the synthetic Kaggle-layout sample into ``path`` (deterministic per profile)."""
    from .sample import generate_sample

    print(f"generating the embedded sample into {path} ...", flush=True)
    summary = generate_sample(path, **profile.get("sample", {}))
    print(f"sample ready: {summary}", flush=True)


def git_commit() -> str:
    """The checked-out commit, with "-dirty" when tracked files differ from it (the run is then not reproducible)."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_notebooks(profile_name: str, run_name: str | None = None, data_dir: str | None = None,
                  only: list[str] | None = None, runs_root: Path = RUNS_ROOT) -> Run:
    """Execute the notebooks into runs/<run_name>/ and record params, metrics and the leaderboard.

    params.yaml keeps the wall time of notebooks run earlier into the same folder
    (``--only``), so a run assembled in parts still records what each notebook took.
    """
    os.environ.setdefault("TQDM_MININTERVAL", "5")   # progress bars in the executed notebooks: one line per 5 s
    profile = load_profile(profile_name)
    data_path = resolve_data_dir(profile, data_dir)
    run = Run(Path(runs_root) / (run_name or dt.datetime.now().strftime("%Y%m%d-%H%M%S")))
    base = {"data_dir": str(data_path), "run_dir": str(run.path.resolve())}
    params = {**profile["params"], **base}
    command = (f"python -m samesame.pipeline run --profile {profile_name} --run {run.name}"
               + (f" --data-dir {data_dir}" if data_dir else "") + (f" --only {' '.join(only)}" if only else ""))
    record = {"profile": profile_name, "command": command, "commit": git_commit(), "machine": machine(),
              "started": dt.datetime.now().isoformat(timespec="seconds"),
              "wall_seconds": run.params().get("wall_seconds", {}), **params}
    run.write_params(record)
    for nb in notebooks(only):
        declared = pm.inspect_notebook(str(nb))
        nb_params = {k: v for k, v in params.items() if k in declared}
        out = run.path / nb.name
        print(f"[{nb.stem}] -> {out}", flush=True)
        started = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(out), parameters=nb_params, cwd=str(nb.parent),
                                kernel_name="python3", progress_bar=False, log_output=False)
        except pm.PapermillExecutionError as err:
            raise SystemExit(f"[{nb.stem}] failed in cell {err.exec_count}: {err.ename}: {err.evalue}\n"
                             f"read the failing cell in {out}") from None
        finally:
            record["wall_seconds"][nb.stem] = round(time.perf_counter() - started, 1)
            run.write_params(record)
            update_leaderboard(run, runs_root)
    print(f"run recorded in {run.path}", flush=True)
    return run


def fit_run(profile_name: str, run_name: str, data_dir: str | None = None, runs_root: Path = RUNS_ROOT) -> Path:
    """``make fit``: fit the matcher on all of train.csv and save it to runs/<RUN>/models/matcher/."""
    from .artefacts import fit_and_save, fit_options, fit_summary, matcher_path
    from .data import load_dataset

    profile = load_profile(profile_name)
    data_path = resolve_data_dir(profile, data_dir)
    p = profile["params"]
    cache_dir = (NOTEBOOKS_DIR / p["cache_dir"]).resolve() if p.get("cache_dir") else None   # relative to notebooks/
    run = Run(Path(runs_root) / run_name)
    matcher = fit_and_save(run, data_path / "train.csv", load_dataset(data_path).train,
                           use_images=p["use_images"], image_size=p["image_size"], batch_size=p["batch_size"],
                           cache_dir=cache_dir, progress=p["progress"],
                           fit_options=fit_options(p["train_seed"], p["title_encoder"], p["fusion_tuning"], p["fusion_grid"]))
    command = (f"python -m samesame.pipeline fit --profile {profile_name} --run {run_name}"
               + (f" --data-dir {data_dir}" if data_dir else ""))
    run.record("fit", {**fit_summary(matcher), "command": command, "commit": git_commit()})
    print(f"matcher {matcher.name} fitted in {matcher.info['fit_seconds']} s -> {matcher_path(run)}", flush=True)
    return matcher_path(run)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="samesame", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="execute the notebooks into runs/<RUN>/")
    run_p.add_argument("--profile", default="sample", help="configs/<name>.yaml, or a path to a .yaml file")
    run_p.add_argument("--run", default=None, help="run name (default: a timestamp)")
    run_p.add_argument("--data-dir", default=None, help="Kaggle-layout folder (default: the profile's sample)")
    run_p.add_argument("--only", nargs="*", default=None, help="notebook names or prefixes, e.g. 02_phash")
    fit_p = sub.add_parser("fit", help="fit the matcher on train.csv -> runs/<RUN>/models/matcher/")
    fit_p.add_argument("--profile", default="sample")
    fit_p.add_argument("--run", required=True)
    fit_p.add_argument("--data-dir", default=None)
    sample_p = sub.add_parser("sample", help="generate the embedded sample of a profile")
    sample_p.add_argument("--profile", default="sample")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            run_notebooks(args.profile, args.run, args.data_dir, args.only)
        elif args.command == "fit":
            fit_run(args.profile, args.run, args.data_dir)
        else:
            profile = load_profile(args.profile)
            ensure_sample((REPO / profile.get("data_dir", "data/sample")).resolve(), profile)
    except ConfigError as err:
        raise SystemExit(f"config error: {err}") from None


if __name__ == "__main__":
    main(sys.argv[1:])
