"""``pypaxos node --config FILE --id N [--machine MODULE:NAME] [--fsync always|never]
[--log-level LEVEL] [--bug NAME]``.

Runs one node in the foreground until SIGTERM or SIGINT (see ``docs/runtime-contract.md``);
with a ``[tls]`` table, SIGHUP reloads its certificate, key and CA files for the connections
that follow.
Exit status: 0 after a clean stop; 1 when the node cannot run (a corrupt log or snapshot, whose
message names the file and byte offset; a data directory locked by another process; a port in
use; a storage failure while running); 2 for bad usage or a bad configuration file.

``--machine MODULE:NAME`` serves a replicated class instead of the key-value store: ``NAME``
is a class (or a function) whose call builds the object, an ``objects.ObjectMachine`` or a
``Group``; a plain object is wrapped in an ``ObjectMachine``.  It is built once at start-up
to check it (a class that cannot be replicated is exit 2), then once for the node.  Clients
call it with ``PAXOS.CALL``/``PAXOS.QUERY`` (``runtime.objects_port``).

Logs go to stderr, one event a line: ``time LEVEL logger: message``.  INFO shows start and
stop, recovery, elections and leader changes; WARNING dropped connections and bad frames.
The event loop is uvloop's when uvloop is installed.  ``--bug NAME`` (repeatable; or ``bugs =
[...]`` in the file) switches on a planted ``pypaxos.multi`` or ``pypaxos.kv`` bug, for
``pypaxos torture``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable

from pypaxos.cli.lint_machine import load_attribute
from pypaxos.cli.usage import UsageError, add_bug_argument
from pypaxos.objects import ObjectMachine, ObjectsError
from pypaxos.runtime.app import MachineFactory, NodeApp, tls_contexts
from pypaxos.runtime.config import ClusterConfig, ConfigError, load_config
from pypaxos.runtime.identity import ForeignDataError
from pypaxos.storage import CorruptStorageError, StorageError
from pypaxos.storage.file import FSYNC_MODES, FsyncMode
from pypaxos.transport import preferred_loop_factory

log = logging.getLogger("pypaxos.node")

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="cluster.toml")
    parser.add_argument("--id", required=True, type=int, metavar="N", help="this node's id")
    parser.add_argument("--fsync", choices=FSYNC_MODES, help="override the file's fsync setting")
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=LEVELS,
        metavar="LEVEL",
        help="DEBUG, INFO (default), WARNING or ERROR",
    )
    parser.add_argument(
        "--machine",
        metavar="MODULE:NAME",
        help="serve this replicated class (pypaxos.objects) instead of the key-value store",
    )
    add_bug_argument(parser, "switch on a planted Multi-Paxos or KV bug (repeatable; tests only)")


def machine_factory(target: str) -> tuple[MachineFactory, str]:
    """The factory of ``--machine``'s machine and the name it is served under; ``UsageError``
    if ``target`` does not name something that builds a replicable object."""
    try:
        found = load_attribute(target)
    except UsageError as error:
        raise UsageError(f"--machine: {error}") from None
    if not callable(found):
        raise UsageError(f"--machine {target}: not a class or a function")

    def build() -> ObjectMachine:
        built = found()
        return built if isinstance(built, ObjectMachine) else ObjectMachine(built)

    try:
        build()  # a class that cannot be replicated is refused now, not after recovery
    except ObjectsError as error:
        raise UsageError(f"--machine {target}: {error}") from None
    except Exception as error:  # the user's constructor: any failure is theirs to fix
        raise UsageError(f"--machine {target}: building it raised {error!r}") from None
    return build, target.partition(":")[2]


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def run(
    args: argparse.Namespace,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> int:
    """``loop_factory`` replaces the default loop (``pypaxos torture`` skews a node's clock)."""
    try:
        config = load_config(args.config)
        config.member(args.id)
        config.peer_secret()  # an unusable secret file is a configuration error: exit 2
        config.check_protected(args.id)
        tls_contexts(config, args.id)  # so is a TLS file that does not load
        if args.bug:
            config = config.with_bugs(args.bug)
        machine = machine_factory(args.machine) if getattr(args, "machine", None) else None
    except (ConfigError, UsageError) as error:
        print(f"pypaxos node: {error}", file=sys.stderr)
        return 2
    setup_logging(args.log_level)
    planted = sorted(b.value for b in (*config.bugs, *config.kv_bugs))
    if planted:
        log.warning("node %d: planted bugs on: %s", args.id, ", ".join(planted))
    with asyncio.Runner(loop_factory=loop_factory or preferred_loop_factory()) as runner:
        return runner.run(serve(config, args.id, args.fsync, machine))


async def serve(
    config: ClusterConfig,
    node_id: int,
    fsync: str | None,
    machine: tuple[MachineFactory, str] | None = None,
) -> int:
    mode: FsyncMode | None = "always" if fsync == "always" else "never" if fsync else None
    if machine is None:
        app = NodeApp(config, node_id, fsync=mode)
    else:
        app = NodeApp(config, node_id, fsync=mode, machine_factory=machine[0], served=machine[1])
    try:
        await app.start()
    except CorruptStorageError as error:
        log.critical("%s", error)
        return 1
    except ForeignDataError as error:
        log.critical("node %d refuses to start: %s", node_id, error)
        return 1
    except StorageError as error:
        log.critical("node %d cannot open its storage: %s", node_id, error)
        return 1
    except OSError as error:
        log.critical("node %d cannot listen: %s", node_id, error)
        return 1
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = [signal.SIGTERM, signal.SIGINT]
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    # Only with TLS: otherwise a hangup (the terminal closing) still ends the node, as it did.
    if app.tls is not None:
        loop.add_signal_handler(signal.SIGHUP, app.reload_tls)
        signals.append(signal.SIGHUP)
    stop_wait = loop.create_task(stop.wait())
    app_wait = loop.create_task(app.stopped.wait())
    await asyncio.wait((stop_wait, app_wait), return_when=asyncio.FIRST_COMPLETED)
    stop_wait.cancel()
    app_wait.cancel()
    for signum in signals:
        loop.remove_signal_handler(signum)
    await app.stop()
    return 1 if app.failed is not None else 0
