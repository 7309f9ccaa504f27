"""The router survives a peer that left the membership: answering a request forwarded by a node
removed meanwhile, or forwarding to a leader no longer in the address book, must not raise
``UnknownPeer`` into the driver (which would stop the node)."""

from __future__ import annotations

from types import SimpleNamespace

from pypaxos.runtime.router import Router
from pypaxos.runtime.wire import Forward, ForwardReply, WireMessage
from pypaxos.transport import UnknownPeer


class Sender:
    """Sends to ``members`` only, as the transport does once a node is removed."""

    def __init__(self, members: set[int]) -> None:
        self.members = members
        self.sent: list[tuple[int, WireMessage]] = []

    def send(self, to: int, msg: WireMessage) -> None:
        if to not in self.members:
            raise UnknownPeer(to)
        self.sent.append((to, msg))


class Driver:
    def __init__(self) -> None:
        self.node = SimpleNamespace(id=3)
        self.proposed: list[int] = []
        self.lease_answered: set[int] = set()
        self.status_listeners: list[object] = []
        self.sink: object = None

    def propose(self, request_id: int, command: bytes) -> None:
        self.proposed.append(request_id)


def served_request(members: set[int]) -> tuple[Router, Sender, Driver]:
    driver, sender = Driver(), Sender(members)
    router = Router(driver, sender)  # type: ignore[arg-type]
    router.on_forward(Forward(1, 77, b"command", False))
    return router, sender, driver


def test_a_reply_to_a_removed_origin_is_dropped_not_raised() -> None:
    router, sender, driver = served_request(members={2})  # node 1 forwarded, then was removed
    router.on_reply(driver.proposed[0], b"result")
    assert sender.sent == []
    router, sender, driver = served_request(members={1, 2})  # still a member: answered
    router.on_reply(driver.proposed[0], b"result")
    assert sender.sent == [(1, ForwardReply(3, 77, "reply", b"result"))]


def test_redirect_and_busy_to_a_removed_origin_are_dropped() -> None:
    router, sender, driver = served_request(members={2})
    router.on_redirect(driver.proposed[0], 2)
    router, sender, driver = served_request(members={2})
    router.on_busy(driver.proposed[0])
    assert sender.sent == []
