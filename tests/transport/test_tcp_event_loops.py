"""The transport uses only portable asyncio APIs: it runs on whichever loop the runtime picks,
including uvloop's when ``preferred_loop_factory`` finds it installed."""

from __future__ import annotations

import asyncio
import importlib.util

from transport_helpers import CODEC, FAST, Inbox, connect_all, eventually

from pypaxos.core.messages import Message, Query
from pypaxos.transport.tcp import TcpTransport, preferred_loop_factory


async def exchange() -> list[Message]:
    inbox = Inbox()
    a = TcpTransport(1, "127.0.0.1:0", {}, CODEC, lambda m: None, config=FAST)
    b = TcpTransport(2, "127.0.0.1:0", {}, CODEC, inbox.deliver, config=FAST)
    try:
        await a.start()
        await b.start()
        connect_all([a, b])
        for _ in range(10):
            a.send(2, Query(1))
        await eventually(lambda: len(inbox.messages) == 10)
    finally:
        await a.close()
        await b.close()
    return inbox.messages


def test_preferred_loop_factory_matches_what_is_installed() -> None:
    factory = preferred_loop_factory()
    if importlib.util.find_spec("uvloop") is None:
        assert factory is asyncio.new_event_loop
    else:
        assert factory.__module__.startswith("uvloop")


def test_exchange_on_the_preferred_loop() -> None:
    with asyncio.Runner(loop_factory=preferred_loop_factory()) as runner:
        assert runner.run(exchange()) == [Query(1)] * 10
