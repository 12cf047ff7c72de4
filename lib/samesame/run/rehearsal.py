"""The bundle's notebook, run here as Kaggle runs it: offline, on a competition folder's test.csv, timed and scored.

``make kaggle-run RUN=<run> DATA_DIR=<folder>`` executes ``dist/kaggle/notebook/samesame-inference.ipynb`` (built by
``make kaggle RUN=<run>``) with papermill, pip pointed at no index and the proxies at nothing, and records in
runs/<RUN>/metrics.json its wall time, CPU time and peak memory, the number of test listings and, when the folder
has ``test_solution.csv`` (a rehearsal from ``make rehearsal``), the submission's mean F1. Why: Kaggle's hidden test
is ~70,000 listings with photos under a time limit, and the only way to know the notebook fits is to run it at that
size before pushing it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from unittest.mock import patch

import pandas as pd

from samesame.data.listings import DataError, load_dataset
from samesame.data.submission import score_submission
from samesame.run.pipeline import RUNS_ROOT, execute_notebook, resources_used
from samesame.run.runs import RunError, machine, run_folder, writing

OFFLINE = {"PIP_NO_INDEX": "1", "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
"""What keeps the notebook offline, as Kaggle's code competitions are: no package index, no proxy that answers."""


def run_bundle_notebook(bundle: Path, data_dir: Path, working: Path, batch_size: int = 64,
                        solution: pd.DataFrame | None = None) -> dict:
    """Execute the bundle's notebook on ``data_dir`` into ``working`` (its /kaggle/working); return what it took
    and, given the folder's ``solution`` (:func:`samesame.data.listings.load_dataset` reads and checks it), how it
    scored."""
    import papermill as pm

    notebook = bundle / "notebook" / "samesame-inference.ipynb"
    if not notebook.is_file():
        raise DataError(f"{notebook} not found: build the bundle first (make kaggle RUN=<run>)")
    working.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        with patch.dict(os.environ, OFFLINE), resources_used() as used:     # the kernel inherits the environment
            execute_notebook(notebook, working / "samesame-inference.ipynb", cwd=working,
                             parameters={"input_dir": str(data_dir), "bundle_dir": str(bundle / "dataset"),
                                         "output_dir": str(working), "batch_size": batch_size})
    except pm.PapermillExecutionError as err:
        raise DataError(f"the bundle's notebook failed in cell {err.exec_count}: {err.ename}: {err.evalue}; "
                        f"read {working / 'samesame-inference.ipynb'}") from None
    sub = pd.read_csv(working / "submission.csv", dtype=str, keep_default_na=False)
    record = {"wall_seconds": round(time.perf_counter() - started, 1), **used, "test_listings": len(sub),
              "machine": machine()}
    if solution is not None:
        record["mean_f1"] = round(float(score_submission(sub, solution).mean_f1), 4)
    return record


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m samesame.run.rehearsal", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="the run whose bundle it is: the figures go to its metrics.json")
    parser.add_argument("--data-dir", required=True, help="a Kaggle-layout folder with test.csv and test_images/")
    parser.add_argument("--bundle", default="dist/kaggle", help="what make kaggle wrote (default dist/kaggle)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    try:
        path = run_folder(RUNS_ROOT, args.run)          # checked before anything is written
        ds = load_dataset(Path(args.data_dir).resolve())   # test.csv and its solution checked before the run
        with writing(path, f"python -m samesame.run.rehearsal --run {args.run}") as run:
            record = run_bundle_notebook(Path(args.bundle).resolve(), ds.data_dir, path / "kaggle_working",
                                         args.batch_size, ds.solution)
            run.record("kaggle_notebook", record)
    except (DataError, RunError) as err:
        raise SystemExit(f"error: {err}") from None
    print(record, flush=True)
    return record


if __name__ == "__main__":
    main(sys.argv[1:])
