"""The package's structure (issue #26): every module imports, and no import cycle.

The import graph is read from the source (``ast``): an edge A -> B for every ``import B`` or
``from B import ...`` of optplan/ or formulations/ in module A, at module level or inside a
function (an import inside a function still ties A to B: it only hides the cycle until the
function runs). Imports under ``if TYPE_CHECKING:`` are not edges.

- No cycle may close through module-level imports (those break depending on import order).
- Cycles that close through an import inside a function are debt of the package layout
  (issue #26, part 4): ``KNOWN_CYCLES`` lists the ones left, and the test fails when a new one
  appears or one of them is gone (then take it off the list).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from conftest import REPO

PACKAGES = ("optplan", "formulations")
#: Cycles through imports inside functions still to be untied (sorted module names).
KNOWN_CYCLES: set[tuple[str, ...]] = set()


def module_files() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "migrations" in path.parts:  # Alembic's scripts: run by Alembic, not imported
                continue
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _target(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(module_level_only: bool) -> dict[str, set[str]]:
    modules = module_files()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                for n in ast.walk(node)}
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        nodes = tree.body if module_level_only else list(ast.walk(tree))
        deps = set()
        for node in nodes:
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                deps |= {t for a in node.names if (t := _target(a.name, modules))}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
                for a in node.names:
                    full = f"{base}.{a.name}"
                    t = full if full in modules else _target(base, modules)
                    if t:
                        deps.add(t)
        deps.discard(name)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[tuple[str, ...]] = set()
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.add(tuple(sorted(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("module", sorted(m for m in module_files() if not m.endswith("__main__")))  # that one runs the CLI
def test_every_module_imports(module):
    importlib.import_module(module)


def test_no_cycle_through_module_level_imports():
    assert cycles(import_graph(module_level_only=True)) == set()


def test_no_cycle_through_function_imports_but_the_known_ones():
    assert cycles(import_graph(module_level_only=False)) == KNOWN_CYCLES


def test_the_cycle_check_finds_a_cycle():
    """It can fail: a graph with a loop a -> b -> c -> a and a tail d -> a."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == {("a", "b", "c")}


#: Libraries loaded inside functions on purpose: heavy or optional, and only some paths need them.
LAZY_LIBRARIES = {
    "matplotlib": "plots only", "scipy": "a few estimators", "threadpoolctl": "around a fit",
    "torch": "the optional deep extra", "statsforecast": "ETS and seasonal naive only (slow to import)",
    "sklearn": "fits only", "holidays": "country calendars only", "jinja2": "the HTML report",
    "markupsafe": "the HTML report", "pyomo": "the Pyomo hand-off only", "highspy": "the HiGHS engine",
    "ortools": "the GLOP engine", "mpisppy": "the optional mpi-sppy bridge", "distributed": "a Dask cluster",
    "concurrent": "process backends", "multiprocessing": "process backends", "dateutil": "Easter dates",
    "tqdm": "progress bars in a terminal", "pyarrow": "Parquet tables only (optional)",
}
#: Modules whose imports of optplan inside functions are deliberate (and say why in their docstring).
LAZY_MODULES = {
    "optplan.cli": "so that `optplan --help` starts without pandas, Pyomo or scikit-learn",
    "optplan.solvers": "an engine class is imported when the engine is first chosen",
}


def test_imports_inside_functions_load_only_heavy_libraries():
    """Issue #26, part 4: an import inside a function is a heavy or optional library loaded
    lazily (LAZY_LIBRARIES), or in a module that lazy-loads on purpose (LAZY_MODULES)."""
    bad = []
    for name, path in module_files().items():
        if any(name == m or name.startswith(m + ".") and m == "optplan.cli" for m in LAZY_MODULES):
            continue
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    roots = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    roots = ["." if node.level else (node.module or "").split(".")[0]]
                else:
                    continue
                bad += [f"{path.relative_to(REPO)}:{node.lineno} imports {r} inside {fn.name}()"
                        for r in roots if r not in LAZY_LIBRARIES]
    assert sorted(set(bad)) == []


#: Lines that touch the yield kernel without computing arrivals, and why.
FUNNEL_LINES_ALLOWED = {
    "kernel = data.yield_kernel * factor": "the tornado's what-if scales the conversion (a parameter)",
}


def test_no_funnel_arithmetic_outside_formulations():
    """Issue #26, part 1 (grep level): arrivals through the funnel are the drivers kernel's
    (recruited_arrivals, cohort_arrivals, arrivals_matrix). Outside formulations/ no line that
    names the yield kernel multiplies, convolves or einsums with it, and every einsum or
    convolution in the planning, evaluation, explanation and engine code is an expectation
    over scenarios (a subscript ending "s->" of an array and the probabilities)."""
    bad = []
    for name, path in module_files().items():
        if not name.startswith("optplan.") or name.startswith(("optplan.estimate", "optplan.forecast")):
            continue  # the estimators fit the funnel and the forecasts smooth history: not the plan's math
        for no, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if line.strip() in FUNNEL_LINES_ALLOWED:
                continue
            if "yield_kernel" in code and any(op in code for op in ("einsum", "convolve", " * ", "@", "*=")):
                bad.append(f"{path.relative_to(REPO)}:{no}: {line.strip()}")
            if ("einsum(" in code or "convolve(" in code) and "s->" not in code:
                bad.append(f"{path.relative_to(REPO)}:{no}: {line.strip()}")
    assert bad == []
