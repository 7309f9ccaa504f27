"""Dump where a process's memory is when it gets ``SIGUSR2``, if ``PYPAXOS_HEAP_DIR`` is set.

``heap_probe.py`` puts this directory first on ``PYTHONPATH`` of the scale bench, so every node
it starts installs the handler.  A dump (``DIR/LABEL-PID.json``, the label read from
``DIR/label-PID`` if there) holds: ``/proc/self/smaps`` resident KiB summed by mapping
(``[heap]``, ``[anon]``, files), glibc's ``mallinfo2`` (and how long it took), pymalloc's
arenas and blocks (``sys._debugmallocstats``), ``getrusage`` (CPU, minor faults), counts of
``gc``-tracked objects by type and, under ``PYTHONTRACEMALLOC=1``, the 30 largest allocation
sites.  ``PYPAXOS_HEAP_MALLOPT="M_MMAP_THRESHOLD=131072,..."`` sets glibc options at start.
"""

import collections
import ctypes
import gc
import json
import os
import resource
import signal
import sys
import tempfile
import threading
import time
import tracemalloc
from types import FrameType

_DIR = os.environ.get("PYPAXOS_HEAP_DIR")
_LIBC = ctypes.CDLL(None)
_MALLOPT = {"M_TRIM_THRESHOLD": -1, "M_TOP_PAD": -2, "M_MMAP_THRESHOLD": -3, "M_ARENA_MAX": -8}
_PYMALLOC_TOTALS = (
    "# arenas allocated current",
    "# bytes in allocated blocks",
    "# bytes in available blocks",
)


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _smaps_kib() -> dict[str, int]:
    kib: collections.Counter[str] = collections.Counter()
    name = "[anon]"
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            parts = line.split()
            if parts and "-" in parts[0] and not parts[0].endswith(":"):
                name = parts[5] if len(parts) > 5 else "[anon]"
                if name.startswith("/"):
                    base = os.path.basename(name)
                    keep = any(lib in base for lib in ("libpython", "libssl", "libcrypto"))
                    name = f"file:{base}" if keep else "[files]"
            elif parts and parts[0] == "Rss:":
                kib[name] += int(parts[1])
    return dict(kib.most_common())


def _pymalloc() -> dict[str, int]:
    """The totals of ``sys._debugmallocstats`` (it writes to the C ``stderr``)."""
    fd, path = tempfile.mkstemp()
    saved = os.dup(2)
    try:
        sys.stderr.flush()
        os.dup2(fd, 2)
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)
    with open(path) as report:
        text = report.read()
    os.unlink(path)
    out = {}
    for line in text.splitlines():
        for key in _PYMALLOC_TOTALS:
            if line.startswith(key) and "=" in line:
                out[key.strip("# ")] = int(line.rsplit("=", 1)[1].replace(",", "").strip())
    return out


def _dump(signum: int, frame: FrameType | None) -> None:
    assert _DIR is not None
    label_path = os.path.join(_DIR, f"label-{os.getpid()}")
    label = "dump"
    if os.path.exists(label_path):
        with open(label_path) as label_file:
            label = label_file.read().strip()
    out: dict[str, object] = {"pid": os.getpid(), "label": label}
    if hasattr(_LIBC, "mallinfo2"):
        _LIBC.mallinfo2.restype = _MallInfo2
        began = time.perf_counter()
        info = _LIBC.mallinfo2()
        out["mallinfo_s"] = time.perf_counter() - began
        out["mallinfo2"] = {name: getattr(info, name) for name, _ in _MallInfo2._fields_}
    out["smaps_kib"] = _smaps_kib()
    out["pymalloc"] = _pymalloc()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["rusage"] = {"minflt": usage.ru_minflt, "utime": usage.ru_utime, "stime": usage.ru_stime}
    out["threads"] = threading.active_count()
    out["gc_types"] = dict(
        collections.Counter(type(o).__name__ for o in gc.get_objects()).most_common(15)
    )
    if tracemalloc.is_tracing():
        top = tracemalloc.take_snapshot().statistics("lineno")[:30]
        out["tracemalloc"] = [(str(s.traceback[0]), s.size, s.count) for s in top]
    with open(os.path.join(_DIR, f"{label}-{os.getpid()}.json"), "w") as dump:
        json.dump(out, dump, indent=1)


if _DIR:
    for _part in filter(None, os.environ.get("PYPAXOS_HEAP_MALLOPT", "").split(",")):
        _name, _value = _part.split("=")
        _LIBC.mallopt(_MALLOPT[_name], int(_value))
    signal.signal(signal.SIGUSR2, _dump)
