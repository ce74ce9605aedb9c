"""The core's modules form layers: no import cycle among them, read from the source with ``ast``.

Every import counts, wherever it is written: at module level, under ``if TYPE_CHECKING:`` (a
type is a dependency too) and inside functions (a lazy import hides a cycle from Python, not
from a reader).  The one exception is the package root ``mgf`` (``core/__init__.py``): it is the
facade that imports every module, so a module may read a name from it inside a function (as
``registry`` reads ``__version__``), but never at module level, which a test below checks.
"""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"
ROOT = "mgf"


def module_name(path: Path) -> str:
    parts = [ROOT, *path.relative_to(CORE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in CORE.rglob("*.py")}


def imports(path: Path) -> list[tuple[str, bool]]:
    """``(module imported, at module level)`` for each import of a core module in ``path``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node, top):
        for child in ast.iter_child_nodes(node):
            inside = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, inside) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join(anchor + ([child.module] if child.module else []))
                for alias in child.names:  # ``from . import x`` imports module x when there is one
                    found.append((f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base, inside))
            visit(child, inside)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return [(target, top) for target, top in found if target in MODULES]


def graph() -> dict[str, set[str]]:
    return {name: {target for target, _ in imports(path) if target not in (name, ROOT)} for name, path in MODULES.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each a cycle or a knot of them."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def connect(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def test_the_reader_sees_the_imports_it_must():
    """The check is only as good as its parsing: known edges of each kind are found."""
    edges = graph()
    assert {"mgf.contract.context", "mgf.contract.sampler", "mgf.contract.registry"} <= edges["mgf.generation.run"]  # module level
    assert "mgf.contract.context" in edges["mgf.contract.constraint"]  # under TYPE_CHECKING
    assert "mgf.contract.constraint" in edges["mgf.contract.registry"]  # inside a function
    assert len(MODULES) > 20


def test_the_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_core_modules():
    assert cycles(graph()) == []


def test_no_core_module_imports_the_package_root_at_module_level():
    offenders = [name for name, path in MODULES.items() if name != ROOT
                 and any(target == ROOT and top for target, top in imports(path))]
    assert offenders == []
