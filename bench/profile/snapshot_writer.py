"""What a forked snapshot writer costs: CPU and page faults of a child that encodes the store.

Fills a ``KVStateMachine`` with ``--keys`` keys of ``--value-bytes``-byte values, then
``--repeats`` times forks a child that walks ``snapshot_chunks(--chunk-bytes)`` (encoding
only, no file) and exits, and prints the child's CPU seconds and minor page faults from
``wait4``: the work the runtime's forked writer does per snapshot, including the pages it
copies because it wrote to them (a reference count taken is a write).  ``PYTHONPATH=OTHER/src``
runs another source tree for an A/B pair.
"""

from __future__ import annotations

import argparse
import os

from pypaxos.kv import KVStateMachine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys in the store")
    parser.add_argument("--value-bytes", type=int, default=128, help="bytes per value")
    parser.add_argument("--chunk-bytes", type=int, default=1 << 20, help="chunk bound")
    parser.add_argument("--repeats", type=int, default=3, help="children forked one by one")
    args = parser.parse_args()
    machine = KVStateMachine()
    store = machine._data
    for i in range(args.keys):
        store[b"key:%012d" % i] = b"%0*d" % (args.value_bytes, i)
    for _ in range(args.repeats):
        pid = os.fork()
        if pid == 0:
            encoded_bytes = sum(map(len, machine.snapshot_chunks(args.chunk_bytes)))
            os._exit(0 if encoded_bytes else 1)
        _, status, usage = os.wait4(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            print("the child failed")
            return 1
        cpu_s = usage.ru_utime + usage.ru_stime
        print(
            f"{args.keys} keys: child cpu {cpu_s:.3f} s (system {usage.ru_stime:.3f} s), "
            f"minor faults {usage.ru_minflt}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
