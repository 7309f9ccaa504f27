"""Fixtures for transport tests: real TCP transports on 127.0.0.1, all closed at teardown.

``make_transport`` starts a ``TcpTransport`` whose deliveries land in an ``Inbox``; teardown
closes every transport it made and then checks that no task is left running and that the
event loop reported no exception (in a callback, or a task's that nobody retrieved).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from collections.abc import AsyncIterator, Callable, Collection, Mapping

import pytest
import pytest_asyncio
from transport_helpers import CODEC, FAST, Inbox, MakeTransport

from pypaxos.core.messages import Message
from pypaxos.transport.tcp import TcpConfig, TcpTransport
from pypaxos.transport.tls import TlsContexts

# Most tests send one way, to a node that does not dial back: every small id is a member.
MEMBERS = range(100)


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """asyncio's loop for every test, and uvloop's too for a module whose ``EVENT_LOOPS``
    names it (when uvloop is installed)."""
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    wanted = getattr(getattr(item, "module", None), "EVENT_LOOPS", ())
    if "uvloop" in wanted and importlib.util.find_spec("uvloop") is not None:
        factories["uvloop"] = importlib.import_module("uvloop").new_event_loop
    return factories


@pytest_asyncio.fixture
async def make_transport() -> AsyncIterator[MakeTransport]:
    made: list[TcpTransport[Message]] = []
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: loop_errors.append(context))

    async def make(
        node_id: int,
        *,
        listen: str = "127.0.0.1:0",
        peers: Mapping[int, str] | None = None,
        config: TcpConfig = FAST,
        cluster_id: str | None = None,
        members: Collection[int] | None = MEMBERS,
        secret: bytes | None = None,
        tls: TlsContexts | None = None,
    ) -> tuple[TcpTransport[Message], Inbox]:
        inbox = Inbox()
        transport = TcpTransport(
            node_id,
            listen,
            peers or {},
            CODEC,
            inbox.deliver,
            config=config,
            cluster_id=cluster_id,
            members=members,
            secret=secret,
            tls=tls,
        )
        made.append(transport)
        await transport.start()
        return transport, inbox

    yield make
    for transport in made:
        await transport.close()
    # Let socket-close callbacks run, then insist nothing the tests started is still running.
    await asyncio.sleep(0)
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leaked, f"tasks left running: {leaked}"
    loop.set_exception_handler(None)
    # An exception in a callback or an unretrieved task exception would otherwise pass silently.
    assert not loop_errors, f"event loop errors: {loop_errors}"
