"""No import cycle inside soartlab, and soartlab.io below soartlab.data.

Every import counts, wherever it stands: at the top, under ``if TYPE_CHECKING:`` or inside
a function. A lazy import back into the module that imports you is still a cycle in the
design, even when Python tolerates it at run time.
"""

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "soartlab"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path, module: str) -> set[str]:
    """Every module name ``path`` (the module ``module``) imports, and the names imported
    from a package (``from soartlab import data`` gives ``soartlab`` and ``soartlab.data``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                package = module.split(".")
                if path.name != "__init__.py":
                    package = package[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module → the modules under ``root`` it imports (a package's own parents left out:
    importing ``a.b.c`` runs ``a.b`` first, which is not a dependency of ``a.b.c``)."""
    files = {_module_name(p, root): p for p in root.rglob("*.py")}
    return {
        module: {
            name
            for name in imported_modules(path, module)
            if name in files and name != module and not module.startswith(name + ".")
        }
        for module, path in files.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, …, a], or None."""
    state: dict[str, str] = {}  # "open" while on the path, "done" once fully explored
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for dependency in sorted(graph[module]):
            if state.get(dependency) == "open":
                return [*path[path.index(dependency) :], dependency]
            if dependency not in state and (cycle := visit(dependency)):
                return cycle
        path.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_no_import_cycle_in_soartlab():
    graph = import_graph(ENGINE)
    assert "soartlab.io.tables" in graph and "soartlab.data" in graph
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph))


def _in_io(module: str) -> bool:
    return module == "soartlab.io" or module.startswith("soartlab.io.")


def test_io_depends_only_on_itself_and_errors():
    graph = import_graph(ENGINE)
    io_modules = [m for m in graph if _in_io(m)]
    assert len(io_modules) >= 8, io_modules
    for module in io_modules:
        outside = {name for name in graph[module] if name != "soartlab.errors" and not _in_io(name)}
        assert outside == set(), f"{module} imports {sorted(outside)}; soartlab.io stands below"


def test_graph_sees_every_kind_of_import(tmp_path):
    package = tmp_path / "pkg"
    (package / "io").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "data.py").write_text("from pkg.io import tables\n")
    (package / "io" / "__init__.py").write_text("from .tables import read\n")
    (package / "io" / "tables.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from pkg.data import Limits\n"
        "def read():\n"
        "    from .. import data\n"
    )
    graph = import_graph(package)
    assert graph["pkg.io.tables"] == {"pkg.data"}
    assert graph["pkg.io"] == {"pkg.io.tables"}
    assert graph["pkg.data"] == {"pkg.io", "pkg.io.tables"}
    assert find_cycle(graph) == ["pkg.data", "pkg.io", "pkg.io.tables", "pkg.data"]
    (package / "io" / "tables.py").write_text("def read():\n    pass\n")
    assert find_cycle(import_graph(package)) is None
