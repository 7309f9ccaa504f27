"""A scriptable RESP2 server for client tests: a tiny exactly-once KV with fault hooks.

It speaks just enough of the node's client protocol (docs/runtime-contract.md) to exercise
``pypaxos.client`` without real nodes: GET, SET, INCR, DEL, MGET, EXISTS, PING, INFO and
``PAXOS.REQ client_id seq ...`` with a per-client cache of the last answer.  ``faults`` is a
list of what to do with the next commands in turn: ``"drop"`` (apply, then close without
answering -- the reply is lost), ``"stall"`` (apply, never answer), ``"tryagain"`` (answer
``-TRYAGAIN no leader`` without applying), ``"tryagain-unknown"`` (the same, but saying the
outcome is unknown, as a node does when a proposal timed out).  Every command received is
kept in ``received``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from pypaxos.transport.resp import (
    RespParser,
    encode_array,
    encode_bulk,
    encode_error,
    encode_integer,
    encode_simple,
)

UNKNOWN = "TRYAGAIN no leader: the request timed out, its outcome is unknown"


@dataclass
class FakeNode:
    node_id: int = 1
    leader_client: str = ""
    store: dict[bytes, bytes] = field(default_factory=dict)
    sessions: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    received: list[list[bytes]] = field(default_factory=list)
    applied: int = 0
    server: asyncio.Server | None = None
    address: str = ""

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        return self.address

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = RespParser()
        try:
            while data := await reader.read(65536):
                for command in parser.feed(data):
                    self.received.append(command)
                    name = command[0].upper()
                    fault = self.faults.pop(0) if self.faults and name != b"INFO" else None
                    if fault == "tryagain":
                        writer.write(encode_error("TRYAGAIN no leader"))
                        continue
                    if fault == "expired":
                        writer.write(encode_error("ERR session expired: start again"))
                        continue
                    if fault == "tryagain-unknown":
                        writer.write(encode_error(UNKNOWN))
                        continue
                    reply = self.answer(command)
                    if fault == "drop":
                        writer.close()
                        return
                    if fault == "stall":
                        continue
                    writer.write(reply)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def answer(self, command: list[bytes]) -> bytes:
        name = command[0].upper()
        if name == b"PAXOS.REQ":
            client_id, seq = int(command[1]), int(command[2])
            cached = self.sessions.get(client_id)
            if cached is not None and cached[0] == seq:
                return cached[1]
            reply = self.answer(command[3:])
            self.sessions[client_id] = (seq, reply)
            return reply
        if name == b"INFO":
            leader_id = "1" if self.leader_client else ""
            text = (
                f"# Paxos\r\nnode_id:{self.node_id}\r\npaxos_role:follower\r\n"
                f"leader_id:{leader_id}\r\nleader_client:{self.leader_client}\r\n"
            )
            return encode_bulk(text.encode())
        if name == b"PING":
            return encode_simple("PONG")
        if name == b"GET":
            return encode_bulk(self.store.get(command[1]))
        if name == b"MGET":
            return encode_array(self.store.get(key) for key in command[1:])
        if name == b"EXISTS":
            return encode_integer(sum(key in self.store for key in command[1:]))
        self.applied += 1
        if name == b"SET":
            self.store[command[1]] = command[2]
            return encode_simple("OK")
        if name == b"INCR":
            value = int(self.store.get(command[1], b"0")) + 1
            self.store[command[1]] = str(value).encode()
            return encode_integer(value)
        if name == b"DEL":
            return encode_integer(sum(self.store.pop(k, None) is not None for k in command[1:]))
        return encode_error(f"ERR unknown command '{command[0].decode()}'")
