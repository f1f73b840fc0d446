"""Dependencies point one way: apps -> agent -> tools -> memory -> multimodal.

Every import of every module counts, also those inside functions and under `TYPE_CHECKING`:
a lazy upward import is still an upward dependency (it only fails later). memory may use the
model layer (models are loaded in multimodal/ only); multimodal imports no other layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Higher imports lower, never the reverse.
RANK = {"apps": 4, "agent": 3, "tools": 2, "memory": 1, "multimodal": 0}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, wherever it is in the file."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def upward_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    layer = module.split(".")[0]
    bad = []
    for line, name in imported_modules(source, module, is_package):
        target = name.split(".")[0]
        if target in RANK and RANK[target] > RANK[layer]:
            bad.append(f"{module}:{line} imports {name} ({layer} must not depend on {target})")
    return bad


def test_the_checker_sees_every_kind_of_import():
    source = (
        "from typing import TYPE_CHECKING\n"
        "import tools.registry\n"
        "if TYPE_CHECKING:\n    from agent.config import Settings\n"
        "def f():\n    from apps import server\n"
        "from . import sibling\n"
    )
    found = upward_imports(source, "memory.knowledge.base")
    assert [f.split(" imports ")[1].split(" ")[0] for f in found] == ["tools.registry", "agent.config", "apps"]
    assert imported_modules("from .store import x\n", "memory.knowledge.base") == [(1, "memory.knowledge.store")]
    assert upward_imports("from multimodal.errors import ToolError\nimport memory.store\n", "tools.registry") == []
    assert upward_imports("from memory.store import x\n", "multimodal.clip")  # peers are not equal: memory is above


@pytest.mark.parametrize("layer", sorted(RANK))
def test_no_import_runs_up_the_layers(layer):
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files, f"no modules found under {layer}/"
    bad = []
    for path in files:
        bad += upward_imports(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")
    assert not bad, "imports that run back up the layers:\n" + "\n".join(bad)


#: "Small modules with one job each (~400 lines max)" (developers' guide).
MAX_MODULE_LINES = 400


@pytest.mark.parametrize("layer", ["agent", "tools", "memory", "multimodal"])
def test_modules_stay_small(layer):
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / layer).rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by concern): {long}"
