"""The layers of the installed package, read from its source with :mod:`ast`.

* Nothing in ``src/opendms`` imports test infrastructure (``tests``, ``tests.support``, the
  old ``opendms.testing``, pytest): the wheel must work without the test tree.
* ``opendms.endpoints`` imports nothing from ``opendms.engine``, ``opendms.cli`` or
  ``opendms.validate``: endpoints sit under the engine, not beside it.
* No import cycles between the parts of ``opendms`` (its subpackages and top-level
  modules): the graph of imports between them, counting imports inside functions (a
  lazy import still ties two parts together), is acyclic once the allowed edges below
  are taken out.

Every import counts wherever it is written: module level, inside functions, under
``if TYPE_CHECKING``, and ``importlib.import_module("literal")``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "opendms"

# top-level names (and dotted prefixes) that are test infrastructure
TEST_ONLY = ("tests", "conftest", "opendms.testing", "pytest", "_pytest")

# opendms.endpoints must not import from these
ENDPOINTS_MUST_NOT_IMPORT = ("engine", "cli", "validate")

# (importing part, imported part) pairs of opendms.endpoints that break the rule above; to
# remove in the architecture issue. Empty today: keep it that way.
ENDPOINTS_ALLOWED: frozenset[tuple[str, str]] = frozenset()

# Edges (importer part -> imported part) of the part-level graph allowed to close a cycle.
# Empty: keep it that way.
CYCLE_EDGES_ALLOWED: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name in src
    imported: str  # dotted module name (a module of opendms when it is one)
    line: int

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} imports {self.imported}"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package ``__init__``) for every module under src/opendms."""
    found: dict[str, tuple[Path, bool]] = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


MODULES = _modules()


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports_of(name: str, path: Path, is_package: bool) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(name, is_package, node)
            for alias in node.names:
                # `from opendms import config` imports the module opendms.config
                full = f"{module}.{alias.name}"
                yield Import(name, full if full in MODULES else module, node.lineno)
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id == "__import__")
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield Import(name, node.args[0].value, node.lineno)


ALL_IMPORTS = list(
    dict.fromkeys(imp for name, (p, pkg) in MODULES.items() for imp in _imports_of(name, p, pkg))
)


def _part(module: str) -> str | None:
    """The part of opendms a module belongs to: ``opendms.engine.task`` -> ``engine``,
    ``opendms.config`` -> ``config``; None outside opendms and for ``opendms`` itself."""
    parts = module.split(".")
    return parts[1] if parts[0] == PACKAGE and len(parts) > 1 else None


def _part_graph() -> dict[tuple[str, str], list[Import]]:
    edges: dict[tuple[str, str], list[Import]] = defaultdict(list)
    for imp in ALL_IMPORTS:
        a, b = _part(imp.importer), _part(imp.imported)
        if a is not None and b is not None and a != b:
            edges[a, b].append(imp)
    return dict(edges)


def _cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), sorted."""
    graph: dict[str, list[str]] = defaultdict(list)
    nodes: set[str] = set()
    for a, b in sorted(edges):
        graph[a].append(b)
        nodes.update((a, b))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return sorted(found)


def _is_test_only(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in TEST_ONLY)


def test_the_source_tree_is_found() -> None:
    assert len(MODULES) > 50
    assert {"engine", "endpoints", "cli", "validate"} <= {_part(m) for m in MODULES}
    assert len(ALL_IMPORTS) > 500


def test_no_test_infrastructure_in_the_package() -> None:
    modules = [m for m in MODULES if _is_test_only(m)]
    assert not modules, f"test helpers belong in tests/support, not in the package: {modules}"
    bad = [str(imp) for imp in ALL_IMPORTS if _is_test_only(imp.imported)]
    assert not bad, "src/opendms imports test infrastructure:\n" + "\n".join(bad)


def test_endpoints_do_not_import_engine_cli_or_validate() -> None:
    bad = [
        str(imp)
        for (a, b), imps in sorted(_part_graph().items())
        if a == "endpoints" and b in ENDPOINTS_MUST_NOT_IMPORT and (a, b) not in ENDPOINTS_ALLOWED
        for imp in imps
    ]
    assert not bad, "opendms.endpoints imports a layer above it:\n" + "\n".join(bad)


def test_no_import_cycles_between_parts() -> None:
    graph = _part_graph()
    cycles = _cycles(set(graph) - CYCLE_EDGES_ALLOWED)
    detail = [
        f"{' <-> '.join(cycle)}:\n"
        + "\n".join(
            f"  {imp}"
            for (a, b), imps in sorted(graph.items())
            if a in cycle and b in cycle and (a, b) not in CYCLE_EDGES_ALLOWED
            for imp in imps
        )
        for cycle in cycles
    ]
    assert not cycles, "import cycles between parts of opendms:\n" + "\n".join(detail)


def test_the_allow_lists_are_still_needed() -> None:
    """An allowed edge that no import makes any more comes off its list."""
    graph = _part_graph()
    stale = sorted((ENDPOINTS_ALLOWED | CYCLE_EDGES_ALLOWED) - set(graph))
    assert not stale, f"no longer imported; remove from the allow-list: {stale}"
    for edge in CYCLE_EDGES_ALLOWED:
        # still part of a cycle, or the allowance hides nothing
        assert any(set(edge) <= set(c) for c in _cycles(set(graph))), edge


def test_the_checks_catch_what_they_should() -> None:
    """The helpers themselves: relative imports resolve, cycles are found."""
    node = ast.parse("from ..engine import task").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _resolve("opendms.endpoints.base", False, node) == "opendms.engine"
    assert _resolve("opendms.endpoints", True, node) == "opendms.engine"
    assert _cycles({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}) == [["a", "b", "c"]]
    assert _cycles({("a", "b"), ("b", "c")}) == []
    assert _is_test_only("tests.support.servers") and _is_test_only("opendms.testing.sql")
    assert not _is_test_only("testsupportive") and not _is_test_only("opendms.engine")


# Modules outside an engine's package allowed to import it: the demo is SQLite -> lake by
# definition, and shows the lake's change files.
ENGINE_IMPORTS_ALLOWED = frozenset({("opendms.cli.demo_cmd", "lake")})


def _engine_package(module: str) -> str | None:
    """``opendms.endpoints.postgres.apply`` -> ``postgres``; None for other modules and
    for the endpoint layer's own modules and packages (``opendms.endpoints.engine``,
    ``opendms.endpoints.apply``): an engine package is one with an ``engine`` module."""
    parts = module.split(".")
    if parts[:2] != [PACKAGE, "endpoints"] or len(parts) < 3:
        return None
    name = ".".join(parts[:3])
    return parts[2] if f"{name}.engine" in MODULES else None


def test_engine_packages_are_imported_only_from_inside() -> None:
    """No code outside an engine's package reaches into it: the rest asks the Engine
    (the registry names engine modules as strings)."""
    bad = [
        str(imp)
        for imp in ALL_IMPORTS
        if (engine := _engine_package(imp.imported)) is not None
        and _engine_package(imp.importer) != engine
        and (imp.importer, engine) not in ENGINE_IMPORTS_ALLOWED
    ]
    assert not bad, "an engine package imported from outside it:\n" + "\n".join(bad)
    assert _engine_package("opendms.endpoints.postgres.apply") == "postgres"
    assert _engine_package("opendms.endpoints.engine") is None
    assert _engine_package("opendms.endpoints.apply.rows") is None
