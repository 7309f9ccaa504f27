"""A real process is killed with SIGKILL mid-run; every record it acknowledged must be recovered.

The child appends batches of records, calls ``sync()``, and only then prints the index of the
last record in the batch: a printed number is an acknowledgement, exactly what a Paxos node
would send after its fsync.  The test kills the child by pid at varying moments (mid-append,
mid-write, mid-fsync, mid-rotation), reopens the directory and checks every acknowledged record,
then lets a new child carry on from the recovered log and kills that one too.

SIGKILL tests process crashes only: the kernel keeps what was written, so this cannot show
power-loss durability (which needs fsync="always" and honest hardware).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pypaxos.storage import FileStorage

CHILD = r"""
import sys
from pypaxos.storage import FileStorage

data_dir, fsync = sys.argv[1], sys.argv[2]
storage = FileStorage(data_dir, fsync=fsync, segment_bytes_max=32 * 1024)
index = storage.last_index
batch = 1
while True:
    for _ in range(batch):
        index += 1
        assert storage.append(b"record %d;" % index + b"x" * (index % 500)) == index
    storage.sync()
    sys.stdout.write("%d\n" % index)
    sys.stdout.flush()
    batch = batch % 13 + 1
"""

KILL_AFTER_ACKS = (40, 173, 301)
DEADLINE_SECONDS = 20.0


def expected(index: int) -> bytes:
    return b"record %d;" % index + b"x" * (index % 500)


def run_and_kill(data_dir: Path, fsync: str, acks_before_kill: int) -> int:
    """Start a child, SIGKILL it after ``acks_before_kill`` acks; return the highest ack."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), fsync],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    acked: list[int] = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        while len(acked) < acks_before_kill:
            line = child.stdout.readline()
            if not line:
                pytest.fail(f"child exited early: {child.wait()} {child.communicate()[1]!r}")
            acked.append(int(line))
            assert time.monotonic() < deadline, "child too slow"
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate(timeout=DEADLINE_SECONDS)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    assert child.returncode == -signal.SIGKILL
    # Acks printed before the kill are still in the pipe; a half-written line is no ack.
    lines = rest.split(b"\n")
    acked.extend(int(line) for line in lines[:-1])
    return max(acked)


@pytest.mark.parametrize("fsync", ["always", "never"])
def test_every_acknowledged_record_survives_sigkill(tmp_path: Path, fsync: str) -> None:
    highest_ack = 0
    for acks_before_kill in KILL_AFTER_ACKS:
        highest_ack = run_and_kill(tmp_path, fsync, acks_before_kill)
        with FileStorage(tmp_path, segment_bytes_max=32 * 1024) as s:
            recovered = list(s.records())
        assert s.last_index >= highest_ack
        # In order, no holes, byte-for-byte: unacknowledged records may survive too (they were
        # written, just not yet acknowledged), but only as a prefix after the acknowledged ones.
        assert [r.index for r in recovered] == list(range(1, s.last_index + 1))
        assert all(r.data == expected(r.index) for r in recovered)
    assert len(list(tmp_path.glob("wal-*.log"))) > 1  # the kills happened across rotations
