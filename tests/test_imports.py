"""The import graph of ``src/memat``, read from the source (AST), module-level and function-level imports alike.

Two rules:

* no import circle between modules (a function-level import counts: it is a dependency all the same, only a
  later one);
* the data layer (``memat.data.*``) imports, from memat, only its own modules and leaf modules, those that
  import nothing from memat (today ``memat.io``, ``memat.paths``, ``memat.devices``); see ``memat/data/__init__.py``.

Imports under ``if TYPE_CHECKING:`` count too (the data layer names the types it needs structurally instead).
``from package import name`` is an import of the submodule ``package.name`` when there is one, else of the
package (its ``__init__``); a parent package's ``__init__``, which Python runs first for any import of a
submodule, is not counted as a dependency of its own.
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: Import circles still allowed, each a set of modules (none).
ALLOWED_CYCLES: list[set[str]] = []


# --------------------------------------------------------------------------- the graph
def module_files(src: Path, package: str = "memat") -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``src/<package>`` (a package is its ``__init__``)."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        name = ".".join(path.relative_to(src).with_suffix("").parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        out[name] = path
    return out


def import_graph(src: Path, package: str = "memat") -> dict[str, dict[str, list[str]]]:
    """``graph[a][b]``: where module ``a`` imports module ``b`` (``file:line`` of each import statement),
    for every import anywhere in ``a`` (module level, functions, classes, ``if TYPE_CHECKING:`` blocks)."""
    mods = module_files(src, package)
    graph: dict[str, dict[str, list[str]]] = {m: {} for m in mods}
    for m, path in mods.items():
        pkg = m if path.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
                # `from . import io` imports the module memat.io; `from .data import load_dataset` reads memat.data
                names = subs + ([target] if len(subs) < len(node.names) else [])
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for t in names:
                if t in mods and t != m:
                    graph[m].setdefault(t, []).append(f"{path.relative_to(src)}:{node.lineno}")
    return graph


def cycles(graph: dict[str, dict[str, list[str]]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(graph.get(w, {}))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.add(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(comp)
    return out


def forbidden_cycles(graph, allowed=ALLOWED_CYCLES) -> list[str]:
    """Each circle not inside an allowed one, with the imports that close it."""
    bad = []
    for comp in cycles(graph):
        if any(comp <= a for a in allowed):
            continue
        edges = [f"{a} -> {b} ({', '.join(where)})" for a in sorted(comp) for b, where in sorted(graph[a].items())
                 if b in comp]
        bad.append(f"import circle {sorted(comp)}: " + "; ".join(edges))
    return bad


def leaves(graph, package: str = "memat") -> set[str]:
    """Modules that import nothing from ``package``."""
    return {m for m, targets in graph.items() if not any(t == package or t.startswith(package + ".") for t in targets)}


def data_layer_violations(graph, layer: str = "memat.data", package: str = "memat") -> list[str]:
    """Imports of the data layer that leave it for a module that is not a leaf."""
    ok = leaves(graph, package)
    bad = []
    for m in sorted(graph):
        if m != layer and not m.startswith(layer + "."):
            continue
        for t, where in sorted(graph[m].items()):
            if t == layer or t.startswith(layer + ".") or t in ok:
                continue
            bad.append(f"{m} imports {t} ({', '.join(where)}), which is outside {layer} and not a leaf "
                       f"(it imports {', '.join(sorted(graph[t]))})")
    return bad


# --------------------------------------------------------------------------- the rules, on memat
def test_no_import_circles():
    bad = forbidden_cycles(import_graph(SRC))
    assert not bad, "\n".join(bad)


def test_data_layer_imports_nothing_above_it():
    graph = import_graph(SRC)
    bad = data_layer_violations(graph)
    assert not bad, "\n".join(bad)
    # the leaves the data layer uses today (a new one is fine, as long as it stays a leaf)
    used = {t for m in graph if m.startswith("memat.data") for t in graph[m] if not t.startswith("memat.data")}
    assert used <= leaves(graph) and {"memat.io", "memat.paths"} <= used


def test_the_graph_sees_the_known_imports():
    g = import_graph(SRC)
    assert "memat.data.loaders" in g["memat.data.build"]  # module level, relative
    assert "memat.data.translate" in g["memat.data.build"]  # inside a function
    assert "memat.data" in g["memat.experiments"]  # `from .data import load_dataset` inside load_cases
    assert "memat.report" in g["memat.reproduce"]  # function level
    assert {"memat.report", "memat.reproduce"} <= set(g["memat.cli"])  # `from . import report, reproduce`


# --------------------------------------------------------------------------- the checks can fail
def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / "memat" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def test_the_checks_catch_a_function_level_circle_and_a_layer_breach(tmp_path):
    src = _tree(tmp_path, {
        "__init__.py": "",
        "leaf.py": "import os\n",
        "models.py": "from .leaf import x\n",
        "top.py": "from .data import loaders\n",
        "data/__init__.py": "from .loaders import load\n",
        "data/loaders.py": "from ..leaf import y\n\ndef load():\n    from .build import b\n",
        "data/build.py": "from .loaders import load\n",
        "data/align.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from memat.models import M\n",
        "data/quality.py": "def f():\n    from .. import top\n",
    })
    g = import_graph(src)
    assert cycles(g) and {"memat.data.build", "memat.data.loaders"} in cycles(g)
    bad = forbidden_cycles(g, allowed=[])
    # the circle is closed by a function-level import; both of its imports are named
    assert any("memat.data.build -> memat.data.loaders (memat/data/build.py:1)" in b for b in bad)
    assert any("memat.data.loaders -> memat.data.build (memat/data/loaders.py:4)" in b for b in bad)
    assert forbidden_cycles(g, allowed=[set(c) for c in cycles(g)]) == []
    breaches = data_layer_violations(g)
    assert any(b.startswith("memat.data.align imports memat.models (memat/data/align.py:3)") for b in breaches)
    assert any(b.startswith("memat.data.quality imports memat.top") for b in breaches)
    assert not any("memat.leaf" in b.split(" (")[0] for b in breaches)  # a leaf is allowed
    assert leaves(g) == {"memat", "memat.leaf"}
