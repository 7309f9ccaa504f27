"""The lock files agree with pyproject.toml, and the check notices when they do not."""

from __future__ import annotations

import importlib.util
import re
import shutil
import tomllib
from pathlib import Path
from types import ModuleType

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _lock_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lock_tool", ROOT / "tools" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pins(lock: Path) -> dict[str, Version]:
    found = re.findall(r"^([A-Za-z0-9_.\-]+)==([^ ;\\\n]+)", lock.read_text(), re.MULTILINE)
    return {name.lower().replace("_", "-"): Version(version) for name, version in found}


def test_every_lock_matches_pyproject() -> None:
    assert _lock_tool().stale_locks(ROOT) == []


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for name, extras in _lock_tool().LOCKS.items():
        pins = _pins(ROOT / name)
        wanted = list(project["project"]["dependencies"]) + list(
            project["build-system"]["requires"]
        )
        for extra in extras:
            wanted += project["project"]["optional-dependencies"][extra]
        for text in wanted:
            requirement = Requirement(text)
            key = requirement.name.lower().replace("_", "-")
            assert key in pins, f"{requirement.name} is not pinned in {name}"
            assert requirement.specifier.contains(pins[key], prereleases=True), (name, text)


def test_an_edited_pyproject_makes_the_locks_stale(tmp_path: Path) -> None:
    tool = _lock_tool()
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    text = (ROOT / "pyproject.toml").read_text()
    assert '"rich>=13",' in text
    (tmp_path / "pyproject.toml").write_text(text.replace('"rich>=13",', '"rich>=14",'))
    assert sorted(tool.stale_locks(tmp_path)) == sorted(tool.LOCKS)
    (tmp_path / "pyproject.toml").write_text(text)
    assert tool.stale_locks(tmp_path) == []
