"""The layers point one way: cli -> agent -> backends (llm, imaging, memory, search, models) -> base modules.
Read from the source with `ast`, so a lazy import inside a function counts as well (except for cycles:
there only module-level imports matter, since a function-level import is how a cycle is broken)."""

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


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    package = module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("qia_cli.agent") or n == "qia_cli.repl"))
def test_the_agent_never_imports_a_user_interface(name):
    bad = sorted(i for i in imports(MODULES[name]) if i.split(".")[0] in UI)
    assert not bad, f"{name} imports {bad}: the agent reports through callbacks, the CLI renders"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.split(".")[1:2] and n.split(".")[1] in BACKENDS))
def test_backends_never_import_the_agent_or_the_cli(name):
    bad = sorted(i for i in imports(MODULES[name]) if i.startswith(("qia_cli.agent", "qia_cli.cli", "qia_cli.repl")))
    assert not bad, f"{name} imports {bad}"


def test_no_import_cycles_at_module_level():
    graph = {
        name: {i for i in imports(path, top_level_only=True) if i in MODULES and i != name}
        for name, path in MODULES.items()
    }
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            pytest.fail("import cycle: " + " -> ".join(cycle))
