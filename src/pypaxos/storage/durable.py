"""Making names durable: a new file or folder survives a power cut only once the folder that
holds its name is fsynced (POSIX leaves a name in the page cache until then)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """fsync the folder ``path``, making the names in it durable."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def make_dirs_durably(path: Path, mode: int = 0o700) -> None:
    """``mkdir -p path``, then fsync the parent of every folder it created, outermost first, so
    the whole chain survives a power cut (not only the last link)."""
    created: list[Path] = []
    folder = path
    while not folder.exists():
        created.append(folder)
        folder = folder.parent
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    for made in reversed(created):
        fsync_dir(made.parent)
