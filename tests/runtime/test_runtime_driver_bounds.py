"""A driver batch is bounded: by client command bytes, by inputs and by time.

A backlog is then served over several batches, in arrival order, none lost; without a bound the
same backlog goes through in one step (so each test can fail).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import pytest

from pypaxos.core.types import Ballot
from pypaxos.kv import KVStateMachine
from pypaxos.multi import Effect, Heartbeat, Message, MultiConfig, Node, Role
from pypaxos.runtime.driver import Driver
from pypaxos.runtime.wire import WireMessage
from pypaxos.storage import MemoryStorage
from pypaxos.transport.resp import encode_command

pytestmark = pytest.mark.asyncio

TICK_S = 0.005


class Drop:
    def send(self, to: int, msg: WireMessage) -> None:
        pass


class Answers:
    def __init__(self) -> None:
        self.replies: list[int] = []

    def on_reply(self, request_id: int, result: bytes) -> None:
        self.replies.append(request_id)

    def on_redirect(self, request_id: int, leader_id: int | None) -> None:
        raise AssertionError(f"request {request_id} redirected")

    def on_busy(self, request_id: int) -> None:
        raise AssertionError(f"request {request_id} refused as busy")

    def on_refused(self, refusal: object) -> None:
        raise AssertionError(f"refused: {refusal}")


class ProposalSpy(Node):
    """Records the request ids of each ``propose_many`` call and the batch it came in."""

    driver: Driver | None = None
    calls: list[tuple[int, list[int]]]

    def propose_many(self, proposals: Iterable[tuple[int, bytes]]) -> list[Effect]:
        proposals = list(proposals)
        assert self.driver is not None
        self.calls.append((self.driver.batches, [request_id for request_id, _ in proposals]))
        return super().propose_many(proposals)


async def lone_leader(
    *, proposal_bytes_max: int = 1 << 30, inputs_per_batch_max: int = 4096
) -> tuple[ProposalSpy, Driver, Answers]:
    config = MultiConfig(
        node_ids=(1,),
        election_timeout_min_ticks=5,
        election_timeout_max_ticks=5,
        leader_stickiness_ticks=2,
    )
    node = ProposalSpy(1, config, random.Random(1), KVStateMachine())
    node.calls = []
    executor = ThreadPoolExecutor(1)
    driver = Driver(
        node,
        MemoryStorage(),
        Drop(),
        executor,
        tick_s=TICK_S,
        proposal_bytes_max=proposal_bytes_max,
        inputs_per_batch_max=inputs_per_batch_max,
    )
    node.driver = driver
    answers = Answers()
    driver.sink = answers
    return node, driver, answers


async def serve(driver: Driver, node: Node, requests: int, answers: Answers) -> None:
    task = asyncio.create_task(driver.run())
    try:
        for _ in range(400):
            if node.role is Role.LEADER:
                break
            await asyncio.sleep(TICK_S)
        assert node.role is Role.LEADER
        for request_id in range(1, requests + 1):  # all waiting before the next batch
            driver.propose(request_id, encode_command(b"SET", b"k%03d" % request_id, b"v" * 100))
        for _ in range(400):
            if len(answers.replies) == requests:
                break
            await asyncio.sleep(TICK_S)
    finally:
        driver.stop()
        await task
        driver.executor.shutdown()


async def test_a_batch_takes_client_commands_up_to_the_byte_bound() -> None:
    size = len(encode_command(b"SET", b"k100", b"v" * 100))
    node, driver, answers = await lone_leader(proposal_bytes_max=3 * size)
    await serve(driver, node, 20, answers)
    assert sorted(answers.replies) == list(range(1, 21))  # none lost
    taken = [ids for _, ids in node.calls]
    assert [i for ids in taken for i in ids] == list(range(1, 21))  # in arrival order
    assert max(len(ids) for ids in taken) <= 3
    assert len({batch for batch, _ in node.calls}) == len(node.calls)  # one call per batch
    assert driver.batches_cut >= 6


async def test_without_the_byte_bound_the_backlog_goes_in_one_batch() -> None:
    node, driver, answers = await lone_leader(proposal_bytes_max=1 << 30)
    await serve(driver, node, 20, answers)
    assert [len(ids) for _, ids in node.calls] == [20]
    assert driver.batches_cut == 0


async def test_the_input_bound_cuts_a_batch_too() -> None:
    node, driver, answers = await lone_leader(inputs_per_batch_max=4)
    await serve(driver, node, 10, answers)
    assert [len(ids) for _, ids in node.calls] == [4, 4, 2]


class HandleSpy(Node):
    driver: Driver | None = None
    handled: list[int]

    def handle(self, msg: Message) -> list[Effect]:
        assert self.driver is not None
        self.handled.append(self.driver.batches)
        return super().handle(msg)


async def follower_with_backlog(step_time_max_s: float, messages: int) -> tuple[HandleSpy, Driver]:
    config = MultiConfig(node_ids=(1, 2, 3), pre_vote=False)
    node = HandleSpy(1, config, random.Random(1), KVStateMachine())
    node.handled = []
    with ThreadPoolExecutor(1) as executor:
        driver = Driver(
            node, MemoryStorage(), Drop(), executor, tick_s=1.0, step_time_max_s=step_time_max_s
        )
        node.driver = driver
        for _ in range(messages):  # all waiting before the first batch
            driver.deliver(Heartbeat(2, Ballot(1, 2), 0))
        task = asyncio.create_task(driver.run())
        for _ in range(200):
            if len(node.handled) == messages:
                break
            await asyncio.sleep(0.005)
        driver.stop()
        await task
    return node, driver


async def test_a_step_out_of_time_leaves_the_rest_for_the_next_batch() -> None:
    # A time bound of zero: every message is stepped in a batch of its own, none is lost.
    node, driver = await follower_with_backlog(0.0, 8)
    assert len(node.handled) == 8
    assert len(set(node.handled)) == 8
    assert driver.batches_cut == 7


async def test_a_step_with_time_left_takes_the_whole_backlog() -> None:
    node, driver = await follower_with_backlog(60.0, 8)
    assert len(node.handled) == 8
    assert len(set(node.handled)) == 1
    assert driver.batches_cut == 0
