"""What a replica's state machine spends applying pipelined SETs: a callgrind-ready loop.

Builds ``--entries`` log entries, each a ``RequestBatch`` of ``--batch`` ``SET`` s of
``--size``-byte values over ``--keys`` keys from 50 clients (a ``redis-benchmark -c 50 -P 16
-r 100000`` load as the log holds it), then applies them to a ``KVStateMachine`` (no digest:
the default).  With ``--build-only`` it stops before applying, so the instruction count of the
apply alone is the difference of four runs::

    for n in 1000 3000; do for flag in "" --build-only; do
        PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=cg.$n$flag \\
            .venv/bin/python bench/profile/apply_batch.py --entries $n $flag
    done; done
    # Ir per SET = ((cg.3000 - cg.1000) - (cg.3000--build-only - cg.1000--build-only))
    #              / (2000 * 16), from each file's "summary:" line

``PYTHONPATH=OTHER_TREE/src`` runs another source tree for an A/B pair.  Without valgrind it
prints the process time per ``SET`` applied, which moves with the machine's load.
"""

from __future__ import annotations

import argparse
import random
import time

from pypaxos.kv import KVStateMachine, RequestBatch, Set, encode_request


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args()
    rng = random.Random(1)
    value = b"v" * args.size
    seqs: dict[int, int] = {}
    entries = []
    for number in range(args.entries):
        client_id = 1 + number % 50
        seqs[client_id] = seqs.get(client_id, 0) + 1
        ops = tuple(Set(b"key:%012d" % rng.randrange(args.keys), value) for _ in range(args.batch))
        entries.append(encode_request(RequestBatch(client_id, seqs[client_id], ops, number)))
    if args.build_only:
        return 0
    machine = KVStateMachine(state_digest=False)
    started = time.process_time()
    for entry in entries:
        machine.apply(entry)
    spent = time.process_time() - started
    assert machine.commands_executed == args.entries * args.batch
    print(f"{1e6 * spent / (args.entries * args.batch):.3f} us of process time per SET applied")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
