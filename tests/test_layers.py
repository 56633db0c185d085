"""The layers point down: memstore <- policy <- integrations <- evaluation <- trainer <- cli. A
module may import its own layer and those below, never one above, at module level or inside a
function; and no two modules import each other, directly or round a loop."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["memstore", "policy", "integrations", "evaluation", "trainer", "cli"]


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every module `path` imports, anywhere in it (function bodies included), as dotted names
    resolved against its package; `from pkg import name` also counts `pkg.name`. Imports under
`if TYPE_CHECKING:` are left out: they are for annotations and never run."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found = set()
    tree = ast.parse(path.read_text())
    for block in ast.walk(tree):  # annotations only: `if TYPE_CHECKING:` imports never run
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test):
            block.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if node.module:  # `from . import x` names x, not the package
                found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] in LAYERS}


def modules() -> dict[str, Path]:
    out = {}
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for name, path in modules().items():
        rank = LAYERS.index(name.split(".")[0])
        for imported in imported_modules(path):
            if LAYERS.index(imported.split(".")[0]) > rank:
                upward.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert not upward, upward
    assert len(list((ROOT / "integrations").glob("*.py"))) >= 3  # mem0's API, the MCP server, their banks


def test_the_check_sees_imports_inside_functions(tmp_path):
    (tmp_path / "memstore").mkdir()
    lazy = tmp_path / "memstore" / "lazy.py"
    lazy.write_text("def f():\n    from policy.agent import MemoryAgent\n    import cli.main\n    return MemoryAgent\n")
    assert {"policy.agent", "cli.main"} <= imported_modules(lazy, tmp_path)


def test_no_import_loops():
    mods = modules()
    graph = {name: {m for m in imported_modules(path) if m in mods and m != name} for name, path in mods.items()}
    loops, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                loops.append(" -> ".join(trail[trail.index(nxt):] + [node, nxt]) if nxt in trail else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, trail + [node])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert not loops, loops
