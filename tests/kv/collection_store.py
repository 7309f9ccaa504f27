"""A state machine fed one exactly-once request per command, as the log would; a read-only
command is also answered through ``query`` (the read-index path), which must agree."""

from __future__ import annotations

from pypaxos.kv import (
    READ_OPS,
    Command,
    KVStateMachine,
    Request,
    Result,
    decode_result,
    encode_request,
)


class Store:
    def __init__(self, now_ms: int = 1_000) -> None:
        self.machine = KVStateMachine()
        self.seq = 0
        self.now_ms = now_ms

    def run(self, op: Command) -> Result:
        self.seq += 1
        request = encode_request(Request(1, self.seq, op, self.now_ms))
        queried = self.machine.query(request) if isinstance(op, READ_OPS) else None
        result = decode_result(self.machine.apply(request))
        if queried is not None:
            assert decode_result(queried) == result, op
        return result
