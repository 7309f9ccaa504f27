"""``pypaxos node --config FILE --id N [--machine MODULE:NAME] [--fsync always|never]
[--log-level LEVEL] [--bug NAME] [--join HOST:PORT,... [--user NAME]]``.

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

``--join HOST:PORT,...`` starts a new member of a running cluster (``cluster.members.join``):
with an empty data directory it asks the cluster to add it as a learner (unless it is one),
then starts and catches up; a directory that has started before just starts.  A node whose
``cluster.toml`` says ``bootstrapped = true`` refuses to start on an empty directory without
``--join`` (it would vote without its promises); ``--unsafe-allow-empty-voter`` overrides that,
for tests and benchmarks that wipe a node on purpose.  A node removed from the cluster stops
a moment after the change (exit 0, logged); its directory never starts again.

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
import os
import signal
import sys
from collections.abc import Callable

from pypaxos.cli.usage import PASSWORD_ENV, UsageError, add_bug_argument
from pypaxos.runtime.app import MachineFactory, NodeApp, tls_contexts
from pypaxos.runtime.config import ClusterConfig, ConfigError, load_config
from pypaxos.runtime.identity import ForeignDataError, RecordedMembership
from pypaxos.runtime.identity import read as read_identity
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
    parser.add_argument(
        "--join",
        metavar="HOST:PORT,...",
        help="join the running cluster at these client addresses as a learner (a new member, "
        "empty data directory: added unless it is already; see docs/operations.md)",
    )
    parser.add_argument(
        "--user", help=f"with --join: AUTH as this admin user (password from ${PASSWORD_ENV})"
    )
    parser.add_argument(
        "--unsafe-allow-empty-voter",
        action="store_true",
        help="UNSAFE, for tests and benchmarks only: start as a voter on an empty data "
        "directory of a cluster that has already started (the node forgets its promises)",
    )
    add_bug_argument(parser, "switch on a planted Multi-Paxos or KV bug (repeatable; tests only)")


def machine_factory(target: str) -> tuple[MachineFactory, str]:
    """The factory of ``--machine``'s machine and the name it is served under; ``UsageError``
    if ``target`` does not name something that builds a replicable object."""
    from pypaxos.cli.lint_machine import load_attribute  # the linter's imports: only for this
    from pypaxos.objects import ObjectMachine, ObjectsError  # a KV node never loads them

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
        endpoints = _join_endpoints(args)
    except (ConfigError, UsageError) as error:
        print(f"pypaxos node: {error}", file=sys.stderr)
        return 2
    setup_logging(args.log_level)
    joined = None
    if endpoints is not None and read_identity(config.node_dir(args.id)) is None:
        from pypaxos.client import ClientError
        from pypaxos.cluster.local import ClusterError
        from pypaxos.cluster.members import JoinError

        try:
            joined = asyncio.run(_join(config, args.id, endpoints, args.user))
        except (JoinError, ClientError, ClusterError, OSError) as error:
            log.critical("node %d cannot join the cluster: %s", args.id, error)
            return 1
        log.info("node %d: joined the cluster as a learner (epoch %d)", args.id, joined.epoch)
    unsafe = bool(getattr(args, "unsafe_allow_empty_voter", False))
    if unsafe:
        log.warning("node %d: --unsafe-allow-empty-voter: an empty directory votes", args.id)
    planted = sorted(b.value for b in (*config.bugs, *config.kv_bugs))
    if planted:
        log.warning("node %d: planted bugs on: %s", args.id, ", ".join(planted))
    with asyncio.Runner(loop_factory=loop_factory or preferred_loop_factory()) as runner:
        return runner.run(serve(config, args.id, args.fsync, machine, joined, unsafe))


def _join_endpoints(args: argparse.Namespace) -> list[str] | None:
    text = getattr(args, "join", None)
    if text is None:
        return None
    from pypaxos.cluster.remote import parse_endpoints

    try:
        return parse_endpoints(text)
    except ValueError as error:
        raise UsageError(f"--join: {error}") from None


async def _join(
    config: ClusterConfig, node_id: int, endpoints: list[str], user: str | None
) -> RecordedMembership:
    from pypaxos.cluster.local import LocalCluster
    from pypaxos.cluster.members import JoinError, join

    credentials = None
    if user is not None:
        password = os.environ.get(PASSWORD_ENV)
        if password is None:
            raise JoinError(f"--user needs the password in ${PASSWORD_ENV}")
        credentials = (user, password)
    tls = LocalCluster(config).client_tls()
    return await join(config, node_id, endpoints, tls=tls, credentials=credentials)


async def serve(
    config: ClusterConfig,
    node_id: int,
    fsync: str | None,
    machine: tuple[MachineFactory, str] | None = None,
    joined: RecordedMembership | None = None,
    allow_empty_voter: bool = False,
) -> int:
    mode: FsyncMode | None = "always" if fsync == "always" else "never" if fsync else None
    if machine is None:
        factory, served = None, "replicated objects"
    else:
        factory, served = machine
    app = NodeApp(
        config,
        node_id,
        fsync=mode,
        machine_factory=factory,
        served=served,
        joined=joined,
        allow_empty_voter=allow_empty_voter,
    )
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
    if app.removed:
        log.warning("node %d was removed from the cluster and stopped", node_id)
    return 1 if app.failed is not None else 0
