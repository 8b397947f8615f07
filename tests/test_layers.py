"""The layers point one way: cli -> agent -> backends (llm, imaging, memory, search, models) -> base modules.
Read from the source with `ast`, so a lazy import inside a function counts as well; an import under
`if TYPE_CHECKING:` does not (it never runs)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "qia_cli"
BACKENDS = ("llm", "imaging", "memory", "search", "models")
UI = ("typer", "rich", "prompt_toolkit", "click")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: at module level or in a function, not under TYPE_CHECKING."""
    found: list[ast.Import | ast.ImportFrom] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif _type_checking(node):
            todo.extend(getattr(node, "orelse", []))
        else:
            todo.extend(ast.iter_child_nodes(node))
    return found


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    package = module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        else:
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def package(name: str) -> str:
    """qia_cli.llm.factory -> qia_cli.llm; a top-level module (qia_cli.config) is its own."""
    return ".".join(name.split(".")[:2])


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


GRAPH = {name: {i for i in imports(path) if i in MODULES and i != name} for name, path in MODULES.items()}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("qia_cli.agent") or n == "qia_cli.repl"))
def test_the_agent_never_imports_a_user_interface(name):
    bad = sorted(i for i in imports(MODULES[name]) if i.split(".")[0] in UI)
    assert not bad, f"{name} imports {bad}: the agent reports through callbacks, the CLI renders"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.split(".")[1:2] and n.split(".")[1] in BACKENDS))
def test_backends_never_import_the_agent_or_the_cli(name):
    bad = sorted(
        i
        for i in imports(MODULES[name])
        if i.startswith(("qia_cli.agent", "qia_cli.cli", "qia_cli.repl", "qia_cli.batch"))
    )
    assert not bad, f"{name} imports {bad}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("qia_cli.batch")))
def test_batch_never_imports_a_user_interface(name):
    bad = sorted(i for i in imports(MODULES[name]) if i.split(".")[0] in UI or i.startswith("qia_cli.cli"))
    assert not bad, f"{name} imports {bad}: the CLI shows the progress"


def test_no_import_cycles_between_modules():
    cycle = cycle_in(GRAPH)
    assert cycle is None, "import cycle (lazy imports count): " + " -> ".join(cycle or [])


def test_no_import_cycles_between_packages():
    graph: dict[str, set[str]] = {}
    for name, found in GRAPH.items():
        graph.setdefault(package(name), set()).update(package(i) for i in found if package(i) != package(name))
    cycle = cycle_in(graph)
    assert cycle is None, "package cycle (lazy imports count): " + " -> ".join(cycle or [])
