"""Refresh or verify the pinned installs in ``requirements/``.

``make`` installs only from these lock files (exact versions with hashes), so a release on
PyPI cannot change what a fresh clone runs.  Each lock's first line records a digest of the
dependency lists in ``pyproject.toml`` it was compiled from; ``--check`` (and
``tests/test_lock.py``) fails when the two disagree.  ``make lock`` runs this with
``--refresh --upgrade`` (every pin to the newest allowed release) in a throwaway environment
holding a pinned pip-tools; ``--refresh`` alone keeps the existing pins and only adds or
drops what ``pyproject.toml`` changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
# lock file -> the extras it installs (besides the base dependencies and the build backend)
LOCKS: dict[str, tuple[str, ...]] = {
    # What a node needs and nothing else: the container image installs only this.
    "requirements/runtime.lock": (),
    "requirements/dev.lock": ("dev",),
    "requirements/bench.lock": ("dev", "bench"),
}
DIGEST_PREFIX = "# pyproject-digest: "


def pyproject_digest(extras: tuple[str, ...], pyproject: Path = PYPROJECT) -> str:
    """A digest of what a lock with ``extras`` was compiled from."""
    project = tomllib.loads(pyproject.read_text())
    optional = project["project"].get("optional-dependencies", {})
    inputs = {
        "build": sorted(project["build-system"]["requires"]),
        "base": sorted(project["project"].get("dependencies", [])),
        "extras": {name: sorted(optional.get(name, [])) for name in extras},
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def recorded_digest(lock: Path) -> str | None:
    """The digest written on a lock's first line, if any."""
    first = lock.read_text().splitlines()[:1]
    if first and first[0].startswith(DIGEST_PREFIX):
        return first[0][len(DIGEST_PREFIX) :].strip()
    return None


def stale_locks(root: Path = ROOT) -> list[str]:
    """The lock files that do not match ``pyproject.toml`` (missing ones included)."""
    stale = []
    for name, extras in LOCKS.items():
        lock = root / name
        if not lock.exists() or recorded_digest(lock) != pyproject_digest(
            extras, root / "pyproject.toml"
        ):
            stale.append(name)
    return stale


def refresh(pip_compile: str, *, upgrade: bool) -> None:
    """Recompile every lock from ``pyproject.toml`` (``upgrade``: newest allowed releases)."""
    for name, extras in LOCKS.items():
        lock = ROOT / name
        lock.parent.mkdir(exist_ok=True)
        args = [pip_compile, "--quiet", "--generate-hashes", "--allow-unsafe"]
        args += ["--upgrade"] if upgrade else []
        args += ["--all-build-deps", "--strip-extras", "--no-emit-find-links"]
        args += ["--no-emit-index-url", "--output-file", name]
        args += [f"--extra={extra}" for extra in extras] + ["pyproject.toml"]
        subprocess.run(args, cwd=ROOT, check=True)
        body = lock.read_text()
        if body.startswith(DIGEST_PREFIX):
            body = body.split("\n", 1)[1]
        lock.write_text(f"{DIGEST_PREFIX}{pyproject_digest(extras)}\n{body}")
        print(f"wrote {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true", help="exit 1 if a lock is stale")
    group.add_argument("--refresh", metavar="PIP_COMPILE", help="recompile with this pip-compile")
    parser.add_argument("--upgrade", action="store_true", help="with --refresh: newest releases")
    args = parser.parse_args(argv)
    if args.refresh:
        refresh(args.refresh, upgrade=args.upgrade)
        return 0
    stale = stale_locks()
    for name in stale:
        print(f"{name} does not match pyproject.toml: run `make lock`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
