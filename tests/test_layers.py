"""The package tree is layered: a package imports only packages below it, so no loops.

Read from the bottom: the pure protocol (``core``; ``multi`` and ``kv`` on it), the shells
that carry its effects out and the checkers that judge histories, the node and the client,
the simulator, the tools built on them, and ``cli`` on top, imported by nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "src" / "pypaxos"
LAYERS: dict[str, int] = {
    "core": 0,
    "multi": 1,
    "kv": 1,
    "objects": 1,
    "storage": 2,
    "transport": 2,
    "lincheck": 2,
    "runtime": 3,
    "client": 3,
    "sim": 3,
    "modelcheck": 4,
    "cluster": 4,
    "testing": 4,
    "explorer": 5,
    "torture": 5,
    "bench": 5,
    "cli": 6,
}


def imported_packages(path: Path) -> set[str]:
    """The ``pypaxos`` packages a module imports (at any depth, lazily or not)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "pypaxos" and len(parts) > 1:
                found.add(parts[1])
    return found


def upward_imports(root: Path, layers: dict[str, int]) -> list[str]:
    """Every import of a package at the same layer or above, as "file -> package"."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        own = path.relative_to(root).parts[0].removesuffix(".py")
        if own not in layers:
            continue
        for target in sorted(imported_packages(path) - {own}):
            if target in layers and layers[target] >= layers[own]:
                bad.append(f"{path.relative_to(root)} -> {target}")
    return bad


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LAYERS)


def test_no_package_imports_one_at_its_layer_or_above() -> None:
    assert upward_imports(ROOT, LAYERS) == []


@pytest.mark.parametrize(
    "planted", ["from pypaxos.cli.usage import UsageError", "import pypaxos.sim"]
)
def test_the_check_catches_an_upward_import(tmp_path: Path, planted: str) -> None:
    (tmp_path / "multi").mkdir()
    (tmp_path / "multi" / "node.py").write_text(planted + "\n")
    target = planted.split()[1].split(".")[1]
    assert upward_imports(tmp_path, LAYERS) == [f"multi/node.py -> {target}"]
