"""The protocol packages stay pure: no I/O, clock, randomness or threads (STYLE.md, habit 1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PURE_PACKAGES = ("core", "multi", "kv", "objects")
FORBIDDEN = {"asyncio", "socket", "os", "time", "random", "threading", "selectors", "subprocess"}
ROOT = Path(__file__).resolve().parent.parent / "src" / "pypaxos"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def pure_files() -> list[Path]:
    return sorted(p for pkg in PURE_PACKAGES for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", pure_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_module_imports_no_io(path: Path) -> None:
    assert not imported_modules(path) & FORBIDDEN


def test_checker_notices_a_forbidden_import(tmp_path: Path) -> None:
    planted = tmp_path / "bad.py"
    planted.write_text("import os\nfrom time import monotonic\n")
    assert imported_modules(planted) & FORBIDDEN == {"os", "time"}
