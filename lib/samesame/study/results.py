"""RESULTS.md: what each notebook found in chosen runs, against the seed, and how each run was made.

``make results RUNS="sample-x dev-y"`` (``python -m samesame.study.results sample-x dev-y``)
rebuilds the page from ``runs/<name>/metrics.json`` and ``params.yaml`` alone, so
the numbers a reader sees on GitHub are the ones a run recorded, never retyped.
The answers are :func:`samesame.study.answers.answer`, the text of the notebooks' last
cells. A few figures are copied (shrunk under 200 kB) into docs/figures/, which
holds only this page's figures and is rewritten with it.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from PIL import Image

from samesame.run.runs import METRICS_FILE, Run
from samesame.run.settings import REPO
from samesame.study.answers import ANSWERS, answer, markdown_table
from samesame.study.seed import SEED

RUNS_ROOT = REPO / "runs"
RESULTS_FILE = REPO / "RESULTS.md"
FIGURES_DIR = REPO / "docs" / "figures"
FIGURES = ("02_f1_vs_threshold", "03_backbones", "04_grid", "04_training_curves", "05_levers", "06_ablation",
           "06_pool_size")
MAX_FIGURE_BYTES = 200_000
QUESTIONS = {
    "01_eda": "What are we matching?",
    "02_phash": "How far does a perceptual hash go?",
    "03_backbone_compare": "Which pretrained CNN, and does it beat the hash?",
    "04_finetune": "Does fine-tuning help? Softmax or ArcFace?",
    "05_metric": "Euclidean or cosine distance? Which training-free levers win?",
    "fit": "Which optional steps ship, and how well should the matcher do on unseen groups? (make fit)",
    "06_error_analysis": "What does each signal buy, and where does matching still fail?",
    "07_submission": "The leaderboard file",
}


def load_runs(names: list[str], runs_root: Path = RUNS_ROOT) -> list[Run]:
    """The named runs; a name without a recorded run stops with the runs that exist."""
    if not names:
        raise ValueError(f"name the runs to report: make results RUNS=\"<run> ...\"; recorded: {_recorded(runs_root)}")
    missing = [n for n in names if not (Path(runs_root) / n / METRICS_FILE).is_file()]
    if missing:
        raise ValueError(f"no {METRICS_FILE} in {[str(Path(runs_root) / n) for n in missing]}: run them first "
                         f"(make all RUN=<name>); recorded: {_recorded(runs_root)}")
    runs = [Run(Path(runs_root) / n) for n in names]
    uncommitted = [f"{run.name} ({commit or 'no commit recorded'})" for run in runs for commit in _commits(run)
                   if not commit or commit == "unknown" or commit.endswith("-dirty")]
    if uncommitted:
        raise ValueError(f"runs made on an uncommitted tree cannot be reported, since nobody could rerun them: "
                         f"{', '.join(uncommitted)}; commit, then rerun them (make all RUN=<name>)")
    return runs


def _commits(run: Run) -> list[str | None]:
    """The commits a run's parts were made on: its notebooks' and, where it was fitted alone, the fit's."""
    fit = run.metrics().get("fit") or {}
    return [run.params().get("commit")] + ([fit["commit"]] if "commit" in fit else [])


def _recorded(runs_root: Path) -> list[str]:
    return sorted(p.parent.name for p in Path(runs_root).glob(f"*/{METRICS_FILE}"))


def duration(seconds: float) -> str:
    """'9 min 47 s', '1 h 34 min', '12 s'."""
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def run_row(run: Run) -> dict:
    """One line of the runs table: data, profile, command, commit, machine, wall time."""
    p = run.params()
    wall = p.get("wall_seconds") or {}
    return {"run": run.name, "data": Path(p["data_dir"]).name if p.get("data_dir") else None,
            "profile": p.get("profile"), "command": f"`{p['command']}`" if p.get("command") else None,
            "commit": p.get("commit"), "machine": p.get("machine"),
            "wall time": duration(sum(wall.values())) if wall else None, "started": p.get("started")}


def step_costs(run: Run) -> list[dict]:
    """What each step of a run took: wall time, CPU time (user + system, every process of the step) and peak
    resident memory, per notebook, then a fit made alone (make fit) and the bundle's notebook (make kaggle-run)."""
    p, metrics = run.params(), run.metrics()
    steps = [(nb, wall, (p.get("cpu_seconds") or {}).get(nb), (p.get("peak_rss_gb") or {}).get(nb))
             for nb, wall in (p.get("wall_seconds") or {}).items()]
    for step, wall_key in (("fit", "fit_seconds"), ("kaggle_notebook", "wall_seconds")):
        if wall_key in (metrics.get(step) or {}):
            record = metrics[step]
            steps.append((step, record[wall_key], record.get("cpu_seconds"), record.get("peak_rss_gb")))
    return [{"step": step, "wall time": duration(wall), "CPU time": None if cpu is None else duration(cpu),
             "peak RSS": None if rss is None else f"{rss:.1f} GiB"} for step, wall, cpu, rss in steps]


def results_page(runs: list[Run], figures: dict[str, list[Path]], page_dir: Path = REPO) -> str:
    """The Markdown of RESULTS.md for these runs (``figures``: run name -> its copied figures)."""
    seed_table = [{"seed step": s.method, "train mean F1": s.train_mean_f1, "test mean F1": s.test_mean_f1}
                  for s in SEED.values()]
    names = " ".join(r.name for r in runs)
    parts = [
        "# Results",
        f"Generated by `make results RUNS=\"{names}\"` (`samesame.study.results`) from each run's `metrics.json` and "
        "`params.yaml`; do not edit by hand. Each section is the answer cell of that notebook in that run. "
        "The seed's numbers (mean per-listing F1, `samesame.study.seed`):",
        markdown_table(seed_table),
        "## Runs",
        markdown_table([run_row(r) for r in runs]),
    ]
    for run in runs:
        metrics = run.metrics()
        parts.append(f"## {run.name}")
        costs = step_costs(run)
        if costs:
            parts.append(markdown_table(costs))
        for notebook in ANSWERS:
            if metrics.get(notebook):
                parts += [f"### {notebook}: {QUESTIONS[notebook]}", answer(notebook, metrics)]
        parts += [f"![{f.stem}]({f.relative_to(page_dir).as_posix()})" for f in figures.get(run.name, [])]
    return "\n\n".join(parts) + "\n"


def shrink_png(src: Path, dst: Path, max_bytes: int = MAX_FIGURE_BYTES) -> Path:
    """Copy a figure as a palette PNG, halving its size until it is under ``max_bytes``."""
    image = Image.open(src).convert("RGB")
    while True:
        buffer = io.BytesIO()
        image.quantize(colors=128).save(buffer, format="PNG", optimize=True)
        if buffer.tell() <= max_bytes or min(image.size) < 64:
            break
        image = image.resize((image.width // 2, image.height // 2), Image.LANCZOS)
    if buffer.tell() > max_bytes:
        raise ValueError(f"{src} stays over {max_bytes} bytes even at {image.size}; pick a smaller figure")
    dst.write_bytes(buffer.getvalue())
    return dst


def write_results(names: list[str], runs_root: Path = RUNS_ROOT, out: Path = RESULTS_FILE,
                  figures_dir: Path = FIGURES_DIR) -> Path:
    """Rewrite ``out`` and ``figures_dir`` from the named runs."""
    runs = load_runs(names, runs_root)
    figures_dir.mkdir(parents=True, exist_ok=True)
    for old in figures_dir.glob("*.png"):
        old.unlink()
    figures = {run.name: [shrink_png(run.figure_path(name), figures_dir / f"{run.name}-{name}.png")
                          for name in FIGURES if run.figure_path(name).is_file()] for run in runs}
    out.write_text(results_page(runs, figures, out.parent))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="samesame.study.results", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="run names under runs/, in the order the page shows them")
    args = parser.parse_args(argv)
    try:
        print(f"wrote {write_results(args.runs)}")
    except ValueError as err:
        raise SystemExit(f"results: {err}") from None


if __name__ == "__main__":
    main(sys.argv[1:])
