"""A leader that has just served a client polls for the next input before it sleeps.

After a batch that stepped client proposals or answered clients, the leader's driver yields to
the loop for up to ``idle_spin_s`` instead of parking on a future at once, so an input that
lands meanwhile is taken without a wake-up from sleep.  Nothing else spins: not an idle
leader, not one that served many requests in one batch, not with ``idle_spin_s=0``.
"""

from __future__ import annotations

import asyncio
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pypaxos.multi import MultiConfig, Node, Role, WholeStateSnapshots
from pypaxos.runtime.driver import SPIN_SERVED_MAX, Driver
from pypaxos.runtime.wire import WireMessage
from pypaxos.storage import MemoryStorage

CONFIG = MultiConfig(
    node_ids=(1,),  # a cluster of one: it elects itself and commits on its own vote
    heartbeat_ticks=2,
    election_timeout_min_ticks=3,
    election_timeout_max_ticks=4,
    leader_stickiness_ticks=2,
)
TICK_S = 0.005


class Echo(WholeStateSnapshots):
    """A state machine whose answer to a command is the command."""

    def apply(self, command: bytes) -> bytes:
        return command

    def snapshot(self) -> bytes:
        return b""

    def restore(self, data: bytes) -> None:
        pass


class Nowhere:
    def send(self, to: int, msg: WireMessage) -> None:
        raise AssertionError("a cluster of one sends nothing")


class ChainedClient:
    """Answers arrive here; each answer sends the next request at once (``call_soon``), the way
    a client on the same loop would (unless ``chain`` is off), until ``requests`` have been
    answered."""

    def __init__(self, driver: Driver, requests: int, chain: bool = True) -> None:
        self.driver = driver
        self.requests = requests
        self.chain = chain
        self.answers: list[bytes] = []
        self.done = asyncio.get_running_loop().create_future()

    def start(self) -> None:
        self.driver.propose(0, b"request 0")

    def on_reply(self, request_id: int, result: bytes) -> None:
        self.answers.append(result)
        if len(self.answers) == self.requests:
            self.done.set_result(None)
            return
        if not self.chain:
            return
        index = len(self.answers)
        asyncio.get_running_loop().call_soon(self.driver.propose, index, b"request %d" % index)

    def on_redirect(self, request_id: int, leader_id: int | None) -> None:
        raise AssertionError("the only node is the leader")

    def on_busy(self, request_id: int) -> None:
        raise AssertionError("one request at a time cannot fill the window")


async def until_elected(node: Node) -> None:
    deadline = time.monotonic() + 5
    while node.role is not Role.LEADER:
        assert time.monotonic() < deadline, "not elected"
        await asyncio.sleep(TICK_S)


async def serve_chained_requests(idle_spin_s: float, requests: int = 20) -> Driver:
    node = Node(1, CONFIG, random.Random(1), Echo())
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(
            node, MemoryStorage(), Nowhere(), executor, tick_s=TICK_S, idle_spin_s=idle_spin_s
        )
        task = asyncio.create_task(driver.run())
        await until_elected(node)
        assert driver.spins == 0  # elected, but no client served yet
        client = ChainedClient(driver, requests)
        driver.sink = client
        client.start()
        await asyncio.wait_for(client.done, 5)
        assert client.answers == [b"request %d" % i for i in range(requests)]
        # Idle now: many ticks and heartbeats, but no client work, so no more spins.
        spins = driver.spins
        await asyncio.sleep(20 * TICK_S)
        assert driver.spins <= spins + 1  # at most the one after the last answer
        driver.stop()
        await task
    return driver


@pytest.mark.asyncio
async def test_a_leader_takes_the_next_request_while_it_spins() -> None:
    driver = await serve_chained_requests(idle_spin_s=0.05)
    # Each answer queues the next request with call_soon: the first pass of the spin sees it
    # (unless a tick came due first: then the tick's batch takes the request).
    assert driver.spin_hits >= 10
    assert driver.spins >= driver.spin_hits


@pytest.mark.asyncio
async def test_with_no_spin_the_leader_parks_at_once() -> None:
    driver = await serve_chained_requests(idle_spin_s=0.0)
    assert driver.spins == driver.spin_hits == 0


@pytest.mark.asyncio
async def test_an_idle_leader_does_not_spin() -> None:
    node = Node(1, CONFIG, random.Random(1), Echo())
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(node, MemoryStorage(), Nowhere(), executor, tick_s=TICK_S)
        task = asyncio.create_task(driver.run())
        await asyncio.sleep(40 * TICK_S)
        assert node.role is Role.LEADER
        assert driver.batches >= 10
        assert driver.spins == 0
        driver.stop()
        await task


@pytest.mark.asyncio
async def test_a_leader_serving_many_requests_at_once_does_not_spin() -> None:
    node = Node(1, CONFIG, random.Random(1), Echo())
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(node, MemoryStorage(), Nowhere(), executor, tick_s=TICK_S)
        task = asyncio.create_task(driver.run())
        await until_elected(node)
        client = ChainedClient(driver, SPIN_SERVED_MAX + 1, chain=False)
        driver.sink = client
        for index in range(SPIN_SERVED_MAX + 1):  # one batch: more than a light load
            driver.propose(index, b"request %d" % index)
        await asyncio.wait_for(client.done, 5)
        assert driver.spins == 0
        driver.stop()
        await task


def test_idle_spin_must_not_be_negative() -> None:
    node = Node(1, CONFIG, random.Random(1), Echo())
    with ThreadPoolExecutor(1) as executor, pytest.raises(ValueError, match="idle_spin_s"):
        Driver(node, MemoryStorage(), Nowhere(), executor, tick_s=TICK_S, idle_spin_s=-1)
