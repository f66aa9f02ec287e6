"""The ``analysis`` and ``collector`` packages have no import cycle.

The graph is built from the source with :mod:`ast` (nothing is imported): every
``import`` and ``from ... import`` of a module of either package, at module level
and inside functions or classes alike (a function-level import only hides a
cycle until the function runs), relative imports resolved against the importing
module. ``from pkg import name`` is an arrow to ``pkg.name`` when that is a
module, else to ``pkg`` itself. The implicit import of a package's
``__init__`` before its submodule is not an arrow (every package would be a cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("analysis", "collector")


def _modules() -> dict[str, Path]:
    """Every module of the packages: dotted name -> file (``pkg.sub`` for ``pkg/sub/__init__.py``)."""
    found: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of ``from <level dots><target> import ...`` written in ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def import_graph(external: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    """Module -> the intra-package modules it imports (anywhere in its body); ``external``, when given,
    collects module -> the top-level names of the other packages it imports (``torch``, ``numpy``, ...)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}

    def known(name: str) -> str | None:
        # ``import a.b.c`` depends on a.b.c; fall back to the longest known prefix (a name inside a module)
        while name:
            if name in modules:
                return name
            name = name.rpartition(".")[0]
        return None

    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node.level, node.module)
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            for target in targets:
                dep = known(target)
                if dep is not None and dep != name:
                    graph[name].add(dep)
                elif dep is None and external is not None and target:
                    external.setdefault(name, set()).add(target.split(".")[0])
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    for start in sorted(graph):
        if colour[start] != WHITE:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path = [start]
        colour[start] = GREY
        while stack:
            node, todo = stack[-1]
            if not todo:
                colour[node] = BLACK
                stack.pop()
                path.pop()
                continue
            nxt = todo.pop(0)
            if colour[nxt] == GREY:
                return path[path.index(nxt):] + [nxt]
            if colour[nxt] == WHITE:
                colour[nxt] = GREY
                path.append(nxt)
                stack.append((nxt, sorted(graph[nxt])))
    return None


def test_the_graph_sees_the_packages() -> None:
    graph = import_graph()
    assert {"analysis", "analysis.regimes", "collector", "collector.sweep.spec", "collector.measuring.measurement",
            "collector.shared.factors", "collector.dataset.schema"} <= set(graph)
    # module-level, function-level, absolute and relative arrows are all seen
    assert "collector.shared.protocol" in graph["collector.sweep.spec"]
    assert "collector.measuring.measurement" in graph["collector.sweep.spec"]  # imported inside check_runnable
    assert "analysis.regimes" in graph["analysis"]


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": set(), "c": {"a", "c2"}, "c2": {"c"}}, ["c", "c2", "c"]),
        ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, None),
    ],
)
def test_find_cycle(graph: dict[str, set[str]], cycle: list[str] | None) -> None:
    assert find_cycle(graph) == cycle


def test_resolve_relative() -> None:
    assert _resolve("analysis.plot.figs", False, 1, "style") == "analysis.plot.style"
    assert _resolve("analysis.plot", True, 1, "style") == "analysis.plot.style"
    assert _resolve("analysis.plot.figs", False, 2, "io") == "analysis.io"
    assert _resolve("analysis.plot.figs", False, 1, None) == "analysis.plot"


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


#: Never imported, directly or through any module these import (function-level imports included).
HEAVY = {"torch", "transformers"}


def reached(graph: dict[str, set[str]], roots: set[str]) -> set[str]:
    """The modules ``roots`` import, transitively (the roots included)."""
    seen, todo = set(), list(roots)
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph[node])
    return seen


#: The collector's torch-free side: the shared vocabulary (a whole package) and the dataset contract's modules.
TORCH_FREE = {"collector.schema", "collector.dataset.schema", "collector.dataset.schemadoc", "collector.dataset.combine",
              "collector.dataset.storage", "collector.dataset.tidy"}


def _package(graph: dict[str, set[str]], pkg: str) -> set[str]:
    return {m for m in graph if m == pkg or m.startswith(pkg + ".")}


def test_the_torch_free_side_never_imports_torch() -> None:
    """Every analysis module, every module of ``collector.shared`` and the dataset contract's modules, and all
    they import anywhere in their bodies, name no torch; analysis reaches the collector only through
    ``collector.shared`` and ``collector.dataset``. (tests/test_imports.py checks the same at run time for the
    module-level imports.)"""
    external: dict[str, set[str]] = {}
    graph = import_graph(external)
    from_analysis = reached(graph, _package(graph, "analysis"))
    assert {"collector.dataset.schema", "collector.dataset.combine", "collector.dataset.storage",
            "collector.shared.sim", "collector.shared.factors", "collector.shared.trend", "collector.shared.safetext",
            "collector.shared.errors", "collector.shared.hardware"} <= from_analysis
    elsewhere = sorted(m for m in from_analysis if m.split(".")[0] == "collector" and m != "collector"
                       and not m.startswith(("collector.shared.", "collector.dataset.")))
    assert not elsewhere, f"analysis reaches collector modules outside collector.shared and collector.dataset: {elsewhere}"
    shared = _package(graph, "collector.shared")
    assert {"collector.shared.errors", "collector.shared.factors", "collector.shared.sim"} <= shared
    assert TORCH_FREE <= set(graph)
    free = reached(graph, from_analysis | shared | TORCH_FREE)
    heavy = {m: sorted(external.get(m, set()) & HEAVY) for m in sorted(free) if external.get(m, set()) & HEAVY}
    assert not heavy, f"torch-free modules that import torch or transformers: {heavy}"
    # the check sees an import of torch where there is one
    assert "torch" in external["collector.measuring.measurement"]


def test_collector_shared_is_the_bottom_floor() -> None:
    """``collector.shared`` (errors, factors, hardware, the run record and protocol, the simulator, trend,
    safetext) imports nothing of the collector outside itself, so the dataset modules, the sweep, the
    measuring side and the analysis can all build on it."""
    graph = import_graph()
    shared = _package(graph, "collector.shared")
    assert {"collector.shared.factors", "collector.shared.protocol", "collector.shared.sim"} <= shared
    above = {m: sorted(d for d in graph[m] if d.split(".")[0] == "collector" and d not in shared) for m in shared}
    assert not any(above.values()), f"collector.shared imports from above it: {above}"


def test_analysis_core_is_the_bottom_floor() -> None:
    """``analysis.core`` imports nothing of ``analysis`` above it (only ``errors`` and ``stats``), so every
    analysis, table, figure and the report can build on it."""
    graph = import_graph()
    core = {m for m in graph if m == "analysis.core" or m.startswith("analysis.core.")}
    assert {"analysis.core.common", "analysis.core.outputs", "analysis.core.series"} <= core
    allowed = core | {"analysis.errors", "analysis.core.stats"}
    above = {m: sorted(d for d in graph[m] if d.split(".")[0] == "analysis" and d not in allowed) for m in core}
    assert not any(above.values()), f"analysis.core imports from above it: {above}"


def test_torch_is_imported_only_by_the_measuring_package() -> None:
    """torch and transformers appear only in ``collector.measuring`` (in :mod:`collector.measuring.environment`,
    the machine's versions and device names, only inside functions); everything else can be imported without them."""
    external: dict[str, set[str]] = {}
    import_graph(external)
    heavy = {m for m, names in external.items() if names & HEAVY}
    assert heavy, "the check sees no import of torch at all"
    outside = sorted(m for m in heavy if not m.startswith("collector.measuring."))
    assert not outside, f"torch or transformers imported outside collector.measuring: {outside}"
