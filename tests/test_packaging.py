"""pyproject.toml declares what the package imports, so `pip install .` gives a package that runs."""

import ast
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# import name -> distribution name, where they differ
DIST = {"PIL": "pillow", "imagehash": "imagehash", "sklearn": "scikit-learn", "yaml": "pyyaml", "faiss": "faiss-cpu"}
# Keras' other backends, imported only while Keras runs on them (KERAS_BACKEND=jax / torch), so installed then
KERAS_BACKENDS = {"jax", "torch"}


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {re.split(r"[<>=!;\[ ]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}


def _imports() -> set[str]:
    names = set()
    for path in (REPO / "lib" / "samesame").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "samesame" and n not in KERAS_BACKENDS}


def test_every_third_party_import_is_a_declared_dependency():
    declared = _declared()
    missing = {n for n in _imports() if DIST.get(n, n).lower() not in declared}
    assert not missing, f"lib/samesame imports {sorted(missing)} but pyproject.toml does not declare them"


def test_the_lock_pins_every_runtime_dependency():
    pinned = {line.split("==")[0].strip().lower() for line in (REPO / "requirements.txt").read_text().splitlines()
              if "==" in line and not line.lstrip().startswith("#")}
    aliases = {"tensorflow": "tensorflow-cpu"}       # the lock pins the CPU build of the same API
    unpinned = {d for d in _declared() if aliases.get(d, d) not in pinned}
    assert not unpinned, f"requirements.txt lacks pins for {sorted(unpinned)}"


def test_extras_gpu_lab_dev():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"gpu", "lab", "dev"} <= set(extras)
