"""The house rules that imports can break: the serving package stands alone (it is what goes
into the image), the packages import each other in one direction only, and the bentofile lists
exactly the serving package."""

from __future__ import annotations

import ast
from pathlib import Path

from maas.tracking.serving_code import service_files
from tests.helpers import ROOT

SRC = ROOT / "src" / "maas"
PACKAGES = ("cli", "pipeline", "tracking", "serving", "release", "operate", "monitor")


def unit_of(module: str) -> str:
    """`maas.pipeline.training.fit` -> `pipeline`; a top-level module (`maas.net`) is its own
    unit."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "maas"


def imports(path: Path) -> set[str]:
    """Every maas module a file imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("maas")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("maas"):
            module = str(node.module)
            if module == "maas":  # `from maas import files`: the names are modules
                found |= {f"maas.{alias.name}" for alias in node.names}
            else:
                found.add(module)
    return found


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        module = ".".join(("maas", *path.relative_to(SRC).with_suffix("").parts))
        source = unit_of(module.removesuffix(".__init__"))
        targets = {unit_of(name) for name in imports(path)} - {source}
        graph.setdefault(source, set()).update(targets)
    return graph


def test_serving_imports_only_serving() -> None:
    for path in (SRC / "serving").glob("*.py"):
        outside = sorted(m for m in imports(path) if not m.startswith("maas.serving"))
        assert outside == [], f"{path.name} imports {outside}: the image holds only serving/"


def test_packages_import_each_other_in_one_direction() -> None:
    graph = unit_graph()
    assert set(PACKAGES) <= set(graph)
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for target in sorted(graph.get(node, ())):
            if target in path:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            else:
                visit(target, [*path, target])

    for start in sorted(graph):
        visit(start, [start])
    assert cycles == []
    assert graph["serving"] == set()
    assert "cli" not in set().union(*graph.values())  # nothing depends on the command line


def test_the_bentofile_ships_exactly_the_serving_package() -> None:
    serving = sorted(f"maas/serving/{p.name}" for p in (SRC / "serving").glob("*.py"))
    lock = "maas/serving/requirements.lock"  # the image's packages, pinned by sha256
    assert service_files(ROOT / "bentofile.yaml") == sorted(["maas/__init__.py", *serving, lock])


def test_files_and_flows_stay_small() -> None:
    too_long = [
        f"{path.relative_to(ROOT)} ({lines} lines)"
        for path in [*SRC.rglob("*.py"), *(ROOT / "flows").glob("*.py")]
        if (lines := len(path.read_text().splitlines())) > 400
    ]
    assert too_long == []
    for flow in (ROOT / "flows").glob("*.py"):
        code = [line for line in flow.read_text().splitlines() if line.strip()]
        assert len(code) <= 80, f"{flow.name}: a flow only wires ({len(code)} lines)"


def module_graph() -> dict[str, set[str]]:
    """Each maas module -> the maas modules it imports (a package's `__init__` counts as the
    package; `from maas.pipeline.data import shift` names the module `shift`)."""
    modules = {
        ".".join(("maas", *p.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__")
        for p in SRC.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        name = ".".join(("maas", *path.relative_to(SRC).with_suffix("").parts))
        name = name.removesuffix(".__init__")
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("maas"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in modules else str(node.module))
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name in modules}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def test_no_module_imports_itself_back() -> None:
    """No circle between modules, inside a package or across: the edges of imports made inside
    functions or under TYPE_CHECKING count too (they hide a circle, they do not remove it). A
    package's `__init__` re-exporting its modules is not a circle with them."""
    graph = module_graph()
    for name in graph:  # a package's __init__ importing its own modules
        graph[name] = {t for t in graph[name] if not t.startswith(f"{name}.")}
    cycles: set[tuple[str, ...]] = set()

    def visit(node: str, path: list[str]) -> None:
        for target in sorted(graph.get(node, ())):
            if target in path:
                cycle = path[path.index(target) :]
                start = cycle.index(min(cycle))
                cycles.add(tuple(cycle[start:] + cycle[:start]))
            elif len(path) < 12:
                visit(target, [*path, target])

    for start in sorted(graph):
        visit(start, [start])
    assert sorted(cycles) == []
