"""The driver's ordering: nothing leaves a node before the sync of the records it depends on.

Three drivers run in one event loop over an in-memory network (``call_soon`` delivery) and
``MemoryStorage`` wrapped to log every call.  The network and the client sink check, at every
send and every client answer, that the sending node's storage has synced everything appended
except a leader's own votes (``multi.effects.PersistOwnVote``: its ``Accept`` may leave before
its own record is durable), and that no commit index sent and no client reply rests on a vote
that is not durable: every slot below the commit index has a quorum of synced votes in one
ballot (a ghost record of what each storage synced).  A driver that sent before syncing would
be caught at once; the planted ``send_before_sync`` bug shows the check can fail.  The same
harness shows group commit (fewer syncs than records), storage snapshots with compaction, and
that a node rebuilt from its storage alone has the same state.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import pytest_asyncio

from pypaxos.core.types import Ballot
from pypaxos.kv import Get, Integer, KVStateMachine, Ok, Request, Set, Value, encode_request
from pypaxos.kv import Incr as IncrOp
from pypaxos.multi import Accept, AcceptRecord, Heartbeat, MultiConfig, Node, Record, Role
from pypaxos.runtime.app import recover_records
from pypaxos.runtime.driver import Driver
from pypaxos.runtime.router import Failure, Outcome, Router
from pypaxos.runtime.wire import Forward, ForwardReply, WireMessage, decode_record
from pypaxos.storage import MemoryStorage
from pypaxos.transport import UnknownPeer

CONFIG = MultiConfig(
    node_ids=(1, 2, 3),
    snapshot_every_slots=8,
    log_window_slots=64,
    batch_max_commands=8,
)
TICK_S = 0.002

pytestmark = pytest.mark.asyncio


DurableVotes = dict[tuple[int, Ballot], set[int]]


class CheckedStorage(MemoryStorage):
    """Counts appends and syncs, notes the votes each sync makes durable; a ``MemoryStorage``."""

    def __init__(self, node_id: int, durable_votes: DurableVotes) -> None:
        super().__init__()
        self.node_id = node_id
        self.durable_votes = durable_votes
        self.unsynced: list[Record] = []
        self.appends = 0
        self.syncs_called = 0
        self.snapshots = 0

    def append(self, record: bytes) -> int:
        self.appends += 1
        index = super().append(record)
        self.unsynced.append(decode_record(record))
        return index

    def sync(self) -> None:
        self.syncs_called += 1
        super().sync()
        for record in self.unsynced:
            if isinstance(record, AcceptRecord):
                voters = self.durable_votes.setdefault((record.slot, record.ballot), set())
                voters.add(self.node_id)
        self.unsynced = []

    def write_snapshot_chunks(
        self, index: int, chunks: Iterable[bytes], *, compact: bool = True
    ) -> None:
        self.snapshots += 1
        super().write_snapshot_chunks(index, chunks, compact=compact)


@dataclass
class Cluster:
    drivers: dict[int, Driver] = field(default_factory=dict)
    routers: dict[int, Router] = field(default_factory=dict)
    storages: dict[int, CheckedStorage] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    durable_votes: DurableVotes = field(default_factory=dict)
    verified_commit: int = 0  # every slot below was seen chosen by durable votes
    sends: int = 0
    early_accepts: int = 0  # Accepts sent while the leader's own vote was not durable yet

    def check(self, node_id: int, what: str, commit_index: int = 0) -> None:
        unsynced = list(self.storages[node_id].unsynced)
        own = all(isinstance(r, AcceptRecord) and r.ballot.node_id == node_id for r in unsynced)
        if not own:
            self.violations.append(f"node {node_id} {what} with unsynced records {unsynced}")
        self.check_commit(node_id, what, commit_index)

    def note_accept(self, node_id: int, msg: Accept) -> None:
        if node_id not in self.durable_votes.get((msg.slot, msg.ballot), ()):
            self.early_accepts += 1

    def check_commit(self, node_id: int, what: str, commit_index: int) -> None:
        """Every slot below ``commit_index`` has a quorum of durable votes in one ballot."""
        quorum = CONFIG.quorum()
        for slot in range(self.verified_commit, commit_index):
            if not any(
                s == slot and quorum.is_phase2_quorum(voters)
                for (s, _), voters in list(self.durable_votes.items())
            ):
                self.violations.append(
                    f"node {node_id} {what} with commit index {commit_index}, but slot {slot} "
                    "has no quorum of durable votes"
                )
                return
            self.verified_commit = slot + 1

    def leader(self) -> int | None:
        leaders = [i for i, d in self.drivers.items() if d.node.role is Role.LEADER]
        return leaders[0] if len(leaders) == 1 else None


class Net:
    """Delivers on the next loop step; checks the sender's storage first."""

    def __init__(self, cluster: Cluster, node_id: int) -> None:
        self.cluster = cluster
        self.node_id = node_id

    def send(self, to: int, msg: WireMessage) -> None:
        commit = msg.commit_index if isinstance(msg, Accept | Heartbeat) else 0
        self.cluster.check(self.node_id, f"sent {type(msg).__name__}", commit)
        if isinstance(msg, Accept):
            self.cluster.note_accept(self.node_id, msg)
        self.cluster.sends += 1
        asyncio.get_running_loop().call_soon(deliver, self.cluster, to, msg)


def deliver(cluster: Cluster, to: int, msg: WireMessage) -> None:
    if isinstance(msg, Forward):
        cluster.routers[to].on_forward(msg)
    elif isinstance(msg, ForwardReply):
        cluster.routers[to].on_forward_reply(msg)
    else:
        cluster.drivers[to].deliver(msg)


class CheckingRouter(Router):
    """Checks the storage before every client-facing effect, as the network does for sends."""

    cluster: Cluster

    def on_reply(self, request_id: int, result: bytes) -> None:
        applied = self.cluster.drivers[self.node_id].node.applied_index
        self.cluster.check(self.node_id, "replied", applied)
        super().on_reply(request_id, result)

    def on_redirect(self, request_id: int, leader_id: int | None) -> None:
        self.cluster.check(self.node_id, "redirected")
        super().on_redirect(request_id, leader_id)


MakeCluster = Callable[..., Awaitable[Cluster]]


@pytest_asyncio.fixture
async def make_cluster() -> AsyncIterator[MakeCluster]:
    tasks: list[asyncio.Task[None]] = []
    executors: list[ThreadPoolExecutor] = []
    clusters: list[Cluster] = []

    async def make(*, send_before_sync: bool = False, seed: int = 7) -> Cluster:
        cluster = Cluster()
        clusters.append(cluster)
        for node_id in CONFIG.node_ids:
            storage = CheckedStorage(node_id, cluster.durable_votes)
            node = Node(node_id, CONFIG, random.Random(seed + node_id), KVStateMachine())
            executor = ThreadPoolExecutor(1)
            executors.append(executor)
            net = Net(cluster, node_id)
            driver = Driver(
                node, storage, net, executor, tick_s=TICK_S, send_before_sync=send_before_sync
            )
            router = CheckingRouter(driver, net, request_timeout_s=5.0)
            router.cluster = cluster
            cluster.drivers[node_id] = driver
            cluster.routers[node_id] = router
            cluster.storages[node_id] = storage
        loop = asyncio.get_running_loop()
        for node_id, driver in cluster.drivers.items():
            tasks.append(loop.create_task(driver.run()))
            tasks.append(loop.create_task(cluster.routers[node_id].run(TICK_S)))
        return cluster

    yield make
    for cluster in clusters:
        for driver in cluster.drivers.values():
            driver.stop()
    for task in tasks:
        if not task.done():
            task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for executor in executors:
        executor.shutdown(wait=True)


async def wait_leader(cluster: Cluster, timeout_s: float = 5.0) -> int:
    async with asyncio.timeout(timeout_s):
        while (leader := cluster.leader()) is None:
            await asyncio.sleep(0.01)
    return leader


async def run(router: Router, client_id: int, seq: int, op: object) -> Outcome:
    future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    command = encode_request(Request(client_id, seq, op))  # type: ignore[arg-type]
    router.submit(command, future.set_result)
    return await future


async def test_no_send_or_reply_before_sync_and_group_commit(make_cluster: MakeCluster) -> None:
    cluster: Cluster = await make_cluster()
    await wait_leader(cluster)

    # 60 clients, 3 requests each, through every node (followers forward to the leader).
    async def client(client_id: int) -> list[Outcome]:
        router = cluster.routers[1 + client_id % 3]
        key = b"k%d" % (client_id % 5)
        return [
            await run(router, client_id, 1, Set(key, b"v%d" % client_id)),
            await run(router, client_id, 2, IncrOp(b"counter")),
            await run(router, client_id, 3, Get(key)),
        ]

    outcomes = await asyncio.gather(*(client(c) for c in range(1, 61)))
    assert all(isinstance(o[0], Ok) and isinstance(o[2], Value) for o in outcomes), outcomes
    increments = sorted(o[1].value for o in outcomes if isinstance(o[1], Integer))
    assert increments == list(range(1, 61))  # every INCR applied once, in some order
    assert cluster.violations == []
    assert cluster.early_accepts > 0  # the leader's Accepts went before its own fsync
    assert cluster.sends > 100
    leader = cluster.storages[cluster.leader() or 1]
    assert leader.syncs_called < leader.appends  # group commit: several records per sync
    assert sum(s.snapshots for s in cluster.storages.values()) > 0  # snapshots were written


async def test_a_reply_to_a_node_that_left_the_membership_is_dropped_not_fatal(
    make_cluster: MakeCluster,
) -> None:
    """The origin of a forwarded request is removed before its answer leaves: the leader's
    transport no longer knows it (``UnknownPeer``); the leader drops the answer and serves on."""
    cluster: Cluster = await make_cluster()
    leader = await wait_leader(cluster)
    follower = next(i for i in cluster.routers if i != leader)
    router = cluster.routers[leader]
    real_sender = router.sender

    class Departed:
        def send(self, to: int, msg: WireMessage) -> None:
            if to == follower and isinstance(msg, ForwardReply):
                raise UnknownPeer(to)
            real_sender.send(to, msg)

    router.sender = Departed()  # type: ignore[assignment]
    forwarded = asyncio.ensure_future(run(cluster.routers[follower], 7, 1, Set(b"k", b"v")))
    async with asyncio.timeout(5):
        while cluster.drivers[leader].node.replica.machine.get(b"k") is None:  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)
    assert not forwarded.done()  # its answer was dropped: the origin waits for its timeout
    outcome = await run(router, 8, 1, Set(b"other", b"w"))
    assert isinstance(outcome, Ok)  # the leader's driver survived the dropped answer
    forwarded.cancel()


async def test_planted_send_before_sync_is_caught(make_cluster: MakeCluster) -> None:
    cluster: Cluster = await make_cluster(send_before_sync=True)
    await wait_leader(cluster)
    router = cluster.routers[1]
    for seq in range(1, 6):
        outcome = await run(router, 99, seq, Set(b"k", b"v"))
        assert not isinstance(outcome, Failure)
    assert cluster.violations, "the planted ordering bug went unnoticed"
    assert any("Promise" in v or "Accept" in v for v in cluster.violations)


async def test_a_node_rebuilt_from_its_storage_has_the_same_state(
    make_cluster: MakeCluster,
) -> None:
    cluster: Cluster = await make_cluster()
    await wait_leader(cluster)
    router = cluster.routers[2]
    for seq in range(1, 81):  # enough slots for several snapshots and compactions
        outcome = await run(router, 5, seq, Set(b"k%d" % (seq % 7), b"%d" % seq))
        assert isinstance(outcome, Ok)
    for node_id, driver in cluster.drivers.items():
        driver.stop()
        await asyncio.sleep(0.05)
        storage = cluster.storages[node_id]
        assert storage.snapshots > 0
        assert storage.first_index > 1, "the log was never compacted"
        machine = KVStateMachine()
        records = recover_records(storage, f"node {node_id}", machine)
        rebuilt = Node.recover(node_id, CONFIG, random.Random(1), machine, records)
        live = driver.node
        assert rebuilt.acceptor.promised == live.acceptor.promised
        # The storage's snapshot may be newer than the one the node heard of before the stop
        # (saved, not yet reported): the votes it covers are decided and in it.
        start = rebuilt.acceptor.log_start
        live_votes = {s: v for s, v in live.acceptor.accepted.items() if s >= start}
        assert rebuilt.acceptor.accepted == live_votes
        # The rebuilt machine starts at the last snapshot and applies again what the log says
        # it applied after it (``LearnedRecord``); the live one may be a little ahead.
        assert live.replica.applied_index >= rebuilt.applied_index >= live.replica.snapshot_slot
        assert rebuilt.applied_index >= start > 0
        assert machine.applied > 0  # the snapshot's chunks were loaded into it


@pytest.mark.filterwarnings("ignore:The test <Function")
def test_tick_length_must_be_positive() -> None:
    node = Node(1, CONFIG, random.Random(1), KVStateMachine())
    with ThreadPoolExecutor(1) as executor, pytest.raises(ValueError, match="tick_s"):
        Driver(node, MemoryStorage(), Net(Cluster(), 1), executor, tick_s=0)
