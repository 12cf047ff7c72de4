"""The folders are the architecture: each subpackage says its role and imports only the layers before it, no
module grows past 500 lines, and no two modules import each other (directly or around a loop)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "samesame"
LAYERS = ["core", "data", "image|text", "match", "run", "study"]
"""Bottom to top; subpackages on one layer (image, text) never import each other."""
MAX_LINES = 500


def _layer(sub: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if sub in layer.split("|"))


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in PACKAGE.rglob("*.py")}


def _samesame_imports(path: Path) -> set[str]:
    """Every samesame module ``path`` imports, at module level or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("samesame"):
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("samesame")}
    return names & set(_modules())


def test_every_module_lives_in_a_subpackage_of_a_known_layer():
    stray = [m for m in _modules() if m.count(".") < 2 and m != "samesame" and m.split(".")[1] not in
             {s for layer in LAYERS for s in layer.split("|")}]
    assert stray == []


@pytest.mark.parametrize("sub", [s for layer in LAYERS for s in layer.split("|")])
def test_a_subpackage_says_its_role_and_imports_only_the_layers_below(sub):
    init = PACKAGE / sub / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text()))
    assert doc and doc.startswith(f"{sub}:") and "import" in doc.lower(), f"{init}: say its role and what it may import"
    upward = []
    for name, path in _modules().items():
        if name.split(".")[1:2] != [sub]:
            continue
        for imported in _samesame_imports(path) - {"samesame"}:     # the package itself: __version__
            other = imported.split(".")[1]
            if other != sub and _layer(other) >= _layer(sub):
                upward.append(f"{name} imports {imported}")
    assert upward == []


def test_no_module_is_over_500_lines():
    long = {name: n for name, p in _modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_no_import_cycles():
    graph = {name: {m for m in _samesame_imports(p) if m != name and not name.startswith(m + ".")}
             for name, p in _modules().items()}
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
