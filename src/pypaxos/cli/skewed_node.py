"""``python -m pypaxos.cli.skewed_node --clock-file F -- NODE-ARGS``: a node for the torture
harness's clock nemesis, on a loop whose clock ``pypaxos.torture.clock`` jumps and skews."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from pypaxos.cli import node
from pypaxos.cli.main import build_parser
from pypaxos.torture.clock import SkewedClock, SkewedLoop, reload


def main(argv: list[str] | None = None) -> int:
    # The harness only signals a node once it listens, but a stray SIGUSR1 must not kill it.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[0] != "--clock-file" or "--" not in argv:
        print(
            "usage: python -m pypaxos.cli.skewed_node --clock-file F -- NODE-ARGS", file=sys.stderr
        )
        return 2
    clock_file = Path(argv[1])
    node_argv = argv[argv.index("--") + 1 :]
    args = build_parser(["node", *node_argv]).parse_args(["node", *node_argv])
    clock = SkewedClock()
    reload(clock, clock_file)

    def factory() -> asyncio.AbstractEventLoop:
        loop = SkewedLoop(clock)
        loop.add_signal_handler(signal.SIGUSR1, reload, clock, clock_file)
        return loop

    return node.run(args, loop_factory=factory)


if __name__ == "__main__":
    sys.exit(main())
