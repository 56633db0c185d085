"""The layers point down: memstore <- policy <- evaluation <- trainer <- cli. A module may import
its own layer and those below, never one above (issue 14: policy/ once imported trainer/)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["memstore", "policy", "evaluation", "trainer", "cli"]
# mem0's `Memory(...).add(messages)` runs a manager policy: the mem0-compatible API reaches into
# policy/ lazily, on the first infer=True call (see its docstring). The one known exception.
ALLOWED = {("memstore/compat.py", "policy")}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(LAYERS)


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for rank, layer in enumerate(LAYERS):
        for path in sorted((ROOT / layer).rglob("*.py")):
            for pkg in imported_packages(path):
                if LAYERS.index(pkg) > rank and (str(path.relative_to(ROOT)), pkg) not in ALLOWED:
                    upward.append(f"{path.relative_to(ROOT)} imports {pkg}")
    assert not upward, upward
    assert len(list((ROOT / "evaluation").glob("*.py"))) >= 5  # the package the harness moved into
