"""The layer rule: each package imports only from layers below it (or its own package), with no import cycles.

Every import is read with ``ast``, at module level and inside functions alike, so that an import hidden in a
function body counts as much as one at the top of the file. docs/architecture.md explains the layers.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, NamedTuple, Set

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "emoclf"

# Lowest first. A module may import from its own layer's package and from any layer before it; the packages of
# one row never import each other (training and inference are independent of each other).
LAYERS: List[List[str]] = [
    ["utils"],
    ["config"],
    ["data"],
    ["models"],
    ["engine"],
    ["runs"],
    ["training", "inference"],
    ["comparison", "search"],  # search: emoclf tune, beside compare
    ["serve"],  # emoclf serve: the web page, above inference and comparison
    ["api"],  # emoclf/__init__.py and emoclf/api.py: the public Python API
    ["cli"],
    ["__main__"],
]
RANK = {name: i for i, row in enumerate(LAYERS) for name in row}
MAX_TOP_LEVEL_MODULES = 8


class Import(NamedTuple):
    source: str  # importing module, e.g. emoclf.runs.folder
    target: str  # imported module, e.g. emoclf.data.dataset
    path: Path
    line: int
    name: str  # what the line imports, for the message


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path) -> Dict[str, Path]:
    """Every module of the package under ``root`` by dotted name."""
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _absolute(node: ast.ImportFrom, source: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = source.split(".") if is_package else source.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(root: Path) -> List[Import]:
    """Every import of one of the package's modules, in any scope."""
    known = modules(root)
    top = root.name
    found: List[Import] = []
    for source, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == top:
                        found.append(Import(source, alias.name, path, node.lineno, alias.name))
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, source, path.name == "__init__.py")
                if base.split(".")[0] != top:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    target = sub if sub in known else base
                    found.append(Import(source, target, path, node.lineno, f"{base}.{alias.name}"))
    return [i for i in found if i.target != i.source and i.target in known]


def layer_of(module: str) -> str:
    parts = module.split(".")
    return "api" if len(parts) == 1 else parts[1]


def upward_imports(root: Path) -> List[str]:
    """One line per import of a higher layer, or between the packages of one row."""
    bad = []
    for imp in imports(root):
        src, dst = layer_of(imp.source), layer_of(imp.target)
        if src == dst:
            continue
        if src not in RANK or dst not in RANK:
            bad.append(f"{imp.path}:{imp.line}: {imp.source} imports {imp.name}, but "
                       f"{src if src not in RANK else dst} is in no layer of LAYERS")
        elif RANK[dst] >= RANK[src]:
            bad.append(f"{imp.path}:{imp.line}: {imp.source} ({src}) imports {imp.name} ({dst}), "
                       f"which is {'in the same row' if RANK[dst] == RANK[src] else 'a higher layer'}")
    return bad


def cycles(root: Path) -> List[List[str]]:
    """Import cycles between modules (each reported once, as the list of modules around it)."""
    graph: Dict[str, Set[str]] = {}
    for imp in imports(root):
        graph.setdefault(imp.source, set()).add(imp.target)
    found, state = [], {}

    def visit(node: str, stack: List[str]) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_no_module_imports_a_higher_layer():
    bad = upward_imports(PACKAGE)
    assert not bad, "Imports against the layer rule (see docs/architecture.md):\n" + "\n".join(bad)


def test_no_import_cycles():
    found = cycles(PACKAGE)
    assert not found, "Import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_few_modules_at_the_top_level():
    top = [p.name for p in PACKAGE.glob("*.py")]
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"{len(top)} modules at the top of emoclf/: {sorted(top)}"


def test_every_package_is_in_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    top = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert not (packages | top) - set(RANK), f"not in LAYERS: {sorted((packages | top) - set(RANK))}"


@pytest.fixture
def tiny_package(tmp_path):
    """A package with a low layer importing a high one inside a function, and a cycle inside one package."""
    root = tmp_path / "emoclf"
    for rel, text in {
        "__init__.py": "",
        "utils/__init__.py": "",
        "utils/files.py": "def f():\n    from emoclf.runs.folder import x\n",
        "runs/__init__.py": "",
        "runs/folder.py": "from .loading import y\nx = 1\n",
        "runs/loading.py": "from emoclf.runs import folder\ny = 2\n",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_checks_report_an_upward_import_and_a_cycle(tiny_package):
    bad = upward_imports(tiny_package)
    assert len(bad) == 1
    assert "utils/files.py:2: emoclf.utils.files (utils) imports emoclf.runs.folder.x (runs)" in bad[0]
    assert cycles(tiny_package) == [["emoclf.runs.folder", "emoclf.runs.loading", "emoclf.runs.folder"]]
