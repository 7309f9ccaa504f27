"""A per-batch timing trace of the driver, for finding where a commit gap went.

Off unless the environment names a folder (``PYPAXOS_BATCH_TRACE``); then each node writes
``trace-<node>.txt`` there: one line per batch slower than ``PYPAXOS_BATCH_TRACE_MS`` (wall and
loop-thread CPU time of each phase, the involuntary context switches of the loop thread, the
garbage collector's time inside the batch), one per busy gap between batches, and one per
collection, fork and compaction.  Times are ``time.monotonic`` (the benchmark's clock too), so
a gap the benchmark saw can be matched to what each node was doing.  Wall time well above CPU
time with context switches is a thread that was ready but not running: CPU starvation.
"""

from __future__ import annotations

import gc
import os
import resource
import time
from pathlib import Path
from typing import TextIO

ENV_DIR = "PYPAXOS_BATCH_TRACE"
ENV_MS = "PYPAXOS_BATCH_TRACE_MS"


class BatchTrace:
    """Phase timings of one batch at a time; see the module docstring."""

    def __init__(self, node_id: int, folder: Path, threshold_s: float) -> None:
        self.node_id = node_id
        self.threshold_s = threshold_s
        self._file: TextIO = (folder / f"trace-{node_id}.txt").open("a", buffering=1 << 16)
        self._lines: list[str] = []
        self._phases: list[tuple[str, float, float]] = []
        self._notes: list[str] = []
        self._gc_began = 0.0
        self._gc_s = 0.0
        self._gc_gen = -1
        self._last_flush = time.monotonic()
        self._batch_began = self._batch_cpu = 0.0
        self._mark_wall = self._mark_cpu = 0.0
        self._csw = 0
        self._done_wall = time.monotonic()
        self._done_cpu = time.thread_time()
        gc.callbacks.append(self._on_gc)

    @classmethod
    def from_env(cls, node_id: int) -> BatchTrace | None:
        folder = os.environ.get(ENV_DIR)
        if not folder:
            return None
        threshold_ms = float(os.environ.get(ENV_MS, "20"))
        return cls(node_id, Path(folder), threshold_ms / 1000)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_began = time.monotonic()
            self._gc_gen = info.get("generation", -1)
            return
        took = time.monotonic() - self._gc_began
        self._gc_s += took
        if took > 0.005:
            self._lines.append(
                f"{self._gc_began:.4f} gc gen {self._gc_gen} {took * 1000:.1f} ms "
                f"collected {info.get('collected', 0)}\n"
            )

    def begin(self, inputs: int) -> None:
        now, cpu = time.monotonic(), time.thread_time()
        between = now - self._done_wall
        if between > self.threshold_s:
            self._lines.append(
                f"{self._done_wall:.4f} between {between * 1000:.1f} ms "
                f"cpu {(cpu - self._done_cpu) * 1000:.1f} ms\n"
            )
        self._batch_began, self._batch_cpu = now, cpu
        self._mark_wall, self._mark_cpu = now, cpu
        self._phases = []
        self._notes = [f"in {inputs}"]
        self._gc_s = 0.0
        self._csw = resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw

    def phase(self, name: str) -> None:
        now, cpu = time.monotonic(), time.thread_time()
        self._phases.append((name, now - self._mark_wall, cpu - self._mark_cpu))
        self._mark_wall, self._mark_cpu = now, cpu

    def note(self, text: str) -> None:
        self._notes.append(text)

    def event(self, text: str) -> None:
        self._lines.append(f"{time.monotonic():.4f} {text}\n")

    def end(self) -> None:
        now, cpu = time.monotonic(), time.thread_time()
        took = now - self._batch_began
        if took > self.threshold_s:
            csw = resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw - self._csw
            phases = " ".join(f"{n} {w * 1000:.1f}/{c * 1000:.1f}" for n, w, c in self._phases)
            self._lines.append(
                f"{self._batch_began:.4f} batch {took * 1000:.1f} ms cpu "
                f"{(cpu - self._batch_cpu) * 1000:.1f} ms ivcsw {csw} gc "
                f"{self._gc_s * 1000:.1f} ms | {phases} | {' '.join(self._notes)}\n"
            )
        self._done_wall, self._done_cpu = now, cpu
        if self._lines and now - self._last_flush > 1.0:
            self._file.writelines(self._lines)
            self._file.flush()
            self._lines = []
            self._last_flush = now

    def close(self) -> None:
        self._file.writelines(self._lines)
        self._file.close()
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
