"""Stand-ins for the network and the cluster around one ``RespConnection``.

``Collecting`` is a transport that keeps what the connection writes; ``ReadingRouter`` records
every submission and answers it from one ``KVStateMachine`` when told, so a test sees how many
reads and writes a connection asked for and what each client got back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from pypaxos.kv import KVStateMachine, Request, decode_answer, encode_request
from pypaxos.kv.commands import Command
from pypaxos.runtime.router import VALUES_KEPT, Failure, LocalRead, Outcome, wire_command

Submission = tuple[bytes | LocalRead, Callable[[Outcome], None], bool, int]


class Collecting:
    """A transport that keeps every byte written to it and reports no write backlog."""

    def __init__(self) -> None:
        self.out = bytearray()

    def write(self, data: bytes) -> None:
        self.out += data

    def get_extra_info(self, name: str) -> object:
        return ("127.0.0.1", 1) if name == "peername" else None

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class ReadingRouter:
    """Records every submission (command, callback, whether a read, reads it carries);
    ``answer`` replies to them from one state machine, reads as a forwarded read is: encoded,
    queried, the answer decoded (with ``local_reads``, a ``LocalRead`` is run on the machine
    and its answer handed back as it is, as the node does for its own process's reads)."""

    def __init__(self, *, local_reads: bool = False) -> None:
        self.machine = KVStateMachine()
        self.submitted: list[Submission] = []
        self.seq = 0
        self.local_reads = local_reads  # a LocalRead run on the machine, as the node runs it
        self.kept = 0  # reads answered VALUES_KEPT (``LocalGets``: the values read bare)

    def submit(
        self,
        command: bytes | LocalRead,
        done: Callable[[Outcome], None],
        *,
        read: bool = False,
        reads: int = 1,
    ) -> None:
        self.submitted.append((command, done, read, reads))

    def query_local(self, command: bytes | LocalRead) -> Outcome:
        return decode_answer(self.machine.query(wire_command(command)))

    def apply(self, op: Command) -> None:
        """Apply ``op`` to the machine directly, as a decided write of another client."""
        self.seq += 1
        self.machine.apply(encode_request(Request(7, self.seq, op, 1_000)))

    def answer(self, failure: Failure | None = None) -> None:
        """Answer the submissions made so far (with ``failure`` if given); those the answers
        cause wait for the next call."""
        submitted, self.submitted = self.submitted, []
        for command, done, read, _ in submitted:
            if failure is not None:
                done(failure)
            elif read and self.local_reads and isinstance(command, LocalRead):
                answer = command.run(self.machine)
                self.kept += answer is VALUES_KEPT
                done(cast(Outcome, answer))
            elif read:
                done(decode_answer(self.machine.query(wire_command(command))))
            else:
                done(decode_answer(self.machine.apply(wire_command(command))))

    def answer_until_quiet(self, failure: Failure | None = None) -> None:
        """Answer every submission, and those the answers cause, until none is left."""
        while self.submitted:
            self.answer(failure)
