"""``ObjectMachine``: user objects behind ``multi.StateMachine``, with exactly-once calls.

The log decides a sequence of ``Call`` s (``objects.codec``); every replica feeds the same
sequence to ``apply`` and so runs the same methods on the same states (Schneider 1990).
Nothing a call can carry makes ``apply`` raise: undecodable bytes, an unknown object or method,
a read sent through the log, arguments that do not fit the signature are each answered with a
fixed ``Rejected`` result, and an exception raised by the user's method is a ``Raised`` result.
One replica can therefore never handle a command differently from another because it raised.

A method that raises has still been applied: its seq is used up and whatever it changed before
raising stays changed, on every replica alike (PySyncObj's behaviour too).  Rolling back would
need a copy of the state before every command; instead the rule is the one of every careful
mutator: check first, then change.  The batteries follow it.

Exactly-once, as ``kv.state_machine`` (the "session" of the Raft dissertation, section 6.3):
each call carries ``(client_id, seq)``, the machine keeps per client the last applied ``seq``
and its result bytes; a repeat of the last ``seq`` gets the remembered result without running
anything, an older one ``Stale``.  Sessions expire by applied count
(``session_ttl_commands``), which every replica agrees on; a forgotten client's next request
(``seq`` other than 1) is answered ``SessionExpired`` and not run, and the client id stays
closed (a tombstone, itself expiring): a late copy of the client's first request cannot reopen
the session and let a late copy of the refused request run after the client was told it had
not.  The remaining hole, as in any expiring scheme: a copy delayed past a whole TTL.

Time: each call carries its proposer's clock (``Call.now_ms``); the machine's clock is the
largest stamp of the calls run so far (a retry answered from memory, a stale or refused request
does not move it), and ``api.log_time_ms()`` answers it while a method runs.

``Group`` holds several named objects in one machine (``Call.target`` picks one), sharing the
sessions and the clock.  The snapshot holds the sessions, the clock and each object's state
(``objects.state``); equal histories give byte-identical snapshots.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from pypaxos.core.bugs import require_family
from pypaxos.objects.api import MethodSpec, MethodTable, run_at
from pypaxos.objects.bugs import ObjectBug
from pypaxos.objects.codec import (
    REJECT_BAD_ARGUMENTS,
    REJECT_MALFORMED,
    REJECT_NOT_A_COMMAND,
    REJECT_NOT_A_READ,
    REJECT_UNKNOWN_METHOD,
    REJECT_UNKNOWN_TARGET,
    Call,
    Raised,
    Rejected,
    Returned,
    SessionExpired,
    Stale,
    decode_call,
    encode_result,
    returned,
)
from pypaxos.objects.errors import DefinitionError
from pypaxos.objects.state import StateCodec

DEFAULT_SESSION_TTL_COMMANDS = 100_000
SNAPSHOT_VERSION = 1

_NOOP = encode_result(Returned(None))
_MALFORMED = encode_result(Rejected(REJECT_MALFORMED))
_EXPIRED = encode_result(SessionExpired())


class Session(msgspec.Struct, array_like=True):
    """One client's dedup entry (as ``kv.state_machine.Session``); ``closed``: the client was
    told its session expired, and every later request under its id is refused too."""

    client_id: int
    last_seq: int
    last_active: int
    result: bytes
    closed: bool = False


class MachineSnapshot(msgspec.Struct, frozen=True, array_like=True):
    """The whole machine: ``objects`` maps each object's name to its encoded state."""

    version: int
    applied: int
    session_ttl_commands: int
    now_ms: int
    sessions: tuple[Session, ...]
    objects: dict[str, bytes]


class ObjectState(msgspec.Struct, frozen=True, array_like=True):
    """The objects and the clock without the sessions: the state a sequential model has."""

    now_ms: int
    objects: dict[str, bytes]


_SNAPSHOT_DECODER = msgspec.msgpack.Decoder(MachineSnapshot)
_STATE_DECODER = msgspec.msgpack.Decoder(ObjectState)
_ENCODER = msgspec.msgpack.Encoder()


class _Hosted:
    """One object in a machine: the object, its method table and its state codec."""

    __slots__ = ("codec", "obj", "table")

    def __init__(self, obj: object) -> None:
        if isinstance(obj, type):
            raise DefinitionError(f"pass an instance of {obj.__name__}, not the class")
        self.obj = obj
        self.table = MethodTable(type(obj))
        self.codec = StateCodec(type(obj))
        self.codec.check(obj)


class ObjectMachine:
    """Replicated objects as a ``multi.StateMachine``: ``apply`` runs commands, ``query``
    runs reads, ``snapshot``/``restore`` carry the whole state.

    ``ObjectMachine(obj)`` holds one object (calls name no target); ``Group`` holds several.
    """

    __slots__ = (
        "_applied",
        "_hosted",
        "_now_ms",
        "_sessions",
        "bugs",
        "session_ttl_commands",
    )

    def __init__(
        self,
        obj: object,
        session_ttl_commands: int = DEFAULT_SESSION_TTL_COMMANDS,
        bugs: frozenset[ObjectBug] = frozenset(),
    ) -> None:
        self._setup({"": obj}, session_ttl_commands, bugs)

    def _setup(
        self,
        objects: Mapping[str, object],
        session_ttl_commands: int,
        bugs: frozenset[ObjectBug],
    ) -> None:
        if session_ttl_commands < 1:
            raise ValueError("session_ttl_commands must be at least 1")
        require_family(bugs, ObjectBug)
        self.bugs = bugs
        self.session_ttl_commands = session_ttl_commands
        self._hosted = {name: _Hosted(obj) for name, obj in sorted(objects.items())}
        self._now_ms = 0
        self._applied = 0
        self._sessions: OrderedDict[int, Session] = OrderedDict()

    # -- observation -----------------------------------------------------------------------

    @property
    def applied(self) -> int:
        """How many commands (no-ops and refused ones included) were applied."""
        return self._applied

    @property
    def now_ms(self) -> int:
        return self._now_ms

    def object(self, target: str = "") -> object:
        """The live object called ``target``: read it locally (not linearizable)."""
        return self._hosted[target].obj

    def targets(self) -> tuple[str, ...]:
        return tuple(self._hosted)

    def methods(self, target: str = "") -> MethodTable:
        return self._hosted[target].table

    def sessions(self) -> tuple[Session, ...]:
        return tuple(msgspec.structs.replace(s) for s in self._sessions.values())

    # -- StateMachine ----------------------------------------------------------------------

    def apply(self, command: bytes) -> bytes:
        self._applied += 1
        if not command:
            result = _NOOP
        else:
            try:
                call = decode_call(command)
            except ValueError:
                result = _MALFORMED
            else:
                result = self._apply_call(call)
        self._expire_sessions()
        return result

    def query(self, command: bytes) -> bytes:
        """Run a read (an unmarked method) on the current state: no session, no count.

        The read must not change the object (nothing checks it: the read path runs on one
        replica only, so a change there would make it differ from the others).
        """
        try:
            call = decode_call(command)
        except ValueError:
            return _MALFORMED
        return self._run(call, max(self._now_ms, call.now_ms), read=True)

    def snapshot(self) -> bytes:
        return _ENCODER.encode(
            MachineSnapshot(
                SNAPSHOT_VERSION,
                self._applied,
                self.session_ttl_commands,
                self._now_ms,
                ()
                if ObjectBug.SNAPSHOT_DROPS_SESSIONS in self.bugs
                else tuple(self._sessions.values()),
                self._object_states(),
            )
        )

    def snapshot_chunks(self, chunk_bytes_max: int) -> Iterator[bytes]:
        """The state as one chunk (``multi.StateMachine``): objects are snapshotted whole."""
        yield self.snapshot()

    def snapshot_loader(self) -> OneChunkLoader:
        """Rebuilds this machine from ``snapshot_chunks`` output (one chunk)."""
        return OneChunkLoader(self)

    def restore(self, data: bytes) -> None:
        try:
            snap = _SNAPSHOT_DECODER.decode(data)
        except (msgspec.DecodeError, RecursionError) as error:
            raise ValueError(f"malformed snapshot: {error}") from None
        if snap.version != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported snapshot version {snap.version}")
        if snap.session_ttl_commands < 1:
            raise ValueError("malformed snapshot: session_ttl_commands must be at least 1")
        actives = [s.last_active for s in snap.sessions]
        if actives != sorted(set(actives)) or (actives and actives[-1] > snap.applied):
            raise ValueError("malformed snapshot: sessions out of order")
        sessions = OrderedDict((s.client_id, s) for s in snap.sessions)
        if len(sessions) != len(snap.sessions):
            raise ValueError("malformed snapshot: duplicate client id")
        self._restore_objects(snap.objects)
        self.session_ttl_commands = snap.session_ttl_commands
        self._applied = snap.applied
        self._now_ms = snap.now_ms
        self._sessions = sessions

    # -- the sequential model: the same calls without sessions -----------------------------

    def execute(self, call: Call) -> bytes:
        """Run ``call`` as ``apply`` would, but outside any session and count: the step of a
        sequential model (``pypaxos.testing``'s linearizability check)."""
        self._now_ms = max(self._now_ms, call.now_ms)
        return self._run(call, self._now_ms, read=False)

    def read(self, call: Call) -> bytes:
        """``query`` for an already decoded call."""
        return self._run(call, max(self._now_ms, call.now_ms), read=True)

    def state(self) -> bytes:
        """The objects and the clock, without sessions or count (see ``execute``)."""
        return _ENCODER.encode(ObjectState(self._now_ms, self._object_states()))

    def set_state(self, data: bytes) -> None:
        """Put back what ``state`` returned."""
        state = _STATE_DECODER.decode(data)
        self._restore_objects(state.objects)
        self._now_ms = state.now_ms

    # -- internals -------------------------------------------------------------------------

    def _object_states(self) -> dict[str, bytes]:
        return {name: hosted.codec.snapshot(hosted.obj) for name, hosted in self._hosted.items()}

    def _restore_objects(self, objects: dict[str, bytes]) -> None:
        if set(objects) != set(self._hosted):
            raise ValueError("malformed snapshot: not the objects of this machine")
        puts = [h.codec.prepare(h.obj, objects[name]) for name, h in self._hosted.items()]
        for put in puts:  # every state checked first: all objects change, or none
            put()

    def _apply_call(self, call: Call) -> bytes:
        session = self._sessions.get(call.client_id)
        if session is None:
            if call.seq != 1:
                if ObjectBug.EXPIRED_SESSION_REOPENS not in self.bugs:
                    self._close(call.client_id)
                return _EXPIRED
            session = Session(call.client_id, 0, self._applied, b"")
            self._sessions[call.client_id] = session
        session.last_active = self._applied
        self._sessions.move_to_end(call.client_id)
        if session.closed:
            return _EXPIRED
        if call.seq == session.last_seq and ObjectBug.RETRY_RUNS_AGAIN not in self.bugs:
            return session.result
        if call.seq < session.last_seq:
            return encode_result(Stale(session.last_seq))
        # Only a call that runs moves the clock: one refused changes nothing, not even time,
        # so a history without it is explained by the same sequential run.
        self._now_ms = max(self._now_ms, call.now_ms)
        result = self._run(call, self._now_ms, read=False)
        session.last_seq = call.seq
        session.result = result
        return result

    def _close(self, client_id: int) -> None:
        """Remember that ``client_id`` was refused as expired: the client starts a new
        session, and a late copy of its first request must not open this one again (after
        which a late copy of the refused request would run although it was answered "not
        applied").  The tombstone expires like a session."""
        self._sessions[client_id] = Session(client_id, 0, self._applied, _EXPIRED, closed=True)

    def _run(self, call: Call, now_ms: int, read: bool) -> bytes:
        hosted = self._hosted.get(call.target)
        if hosted is None:
            return encode_result(Rejected(REJECT_UNKNOWN_TARGET, call.target))
        spec = hosted.table.methods.get(call.method)
        if spec is None:
            return encode_result(Rejected(REJECT_UNKNOWN_METHOD, call.method))
        if spec.is_command == read:
            reason = REJECT_NOT_A_READ if read else REJECT_NOT_A_COMMAND
            return encode_result(Rejected(reason, call.method))
        try:
            args, kwargs = bind_arguments(spec, call.args, call.kwargs)
        except ValueError as error:
            return encode_result(Rejected(REJECT_BAD_ARGUMENTS, str(error)))
        obj = hosted.obj
        try:
            value = run_at(now_ms, lambda: spec.function(obj, *args, **kwargs))
        except Exception as error:  # the user's exception is a result, the same everywhere
            return encode_result(Raised(type(error).__qualname__, str(error)))
        return returned(value)

    def _expire_sessions(self) -> None:
        horizon = self._applied - self.session_ttl_commands
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest.last_active > horizon:
                break
            self._sessions.popitem(last=False)


class OneChunkLoader:
    """Loads an ``ObjectMachine`` snapshot (one chunk); the machine is replaced at ``finish``."""

    __slots__ = ("_chunk", "_machine")

    def __init__(self, machine: ObjectMachine) -> None:
        self._machine = machine
        self._chunk: bytes | None = None

    def load(self, chunk: bytes) -> None:
        if self._chunk is not None:
            raise ValueError("malformed snapshot: an object machine's snapshot is one chunk")
        self._chunk = chunk

    def finish(self) -> None:
        if self._chunk is None:
            raise ValueError("malformed snapshot: no chunk")
        self._machine.restore(self._chunk)


class Group(ObjectMachine):
    """Several named objects in one machine: ``Group(counter=Counter(), locks=LockManager())``;
    a call names its object in ``Call.target``."""

    __slots__ = ()

    def __init__(
        self,
        session_ttl_commands: int = DEFAULT_SESSION_TTL_COMMANDS,
        bugs: frozenset[ObjectBug] = frozenset(),
        **objects: object,
    ) -> None:
        if not objects:
            raise DefinitionError("a group holds at least one object")
        if "" in objects:
            raise DefinitionError("every object of a group has a non-empty name")
        self._setup(objects, session_ttl_commands, bugs)


def bind_arguments(
    spec: MethodSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Fit decoded ``args``/``kwargs`` to ``spec``'s signature, each converted to its
    annotated type (``msgspec.convert``); ``ValueError`` says what does not fit."""
    if spec.plain is None:
        return _bind_general(spec, args, kwargs)
    names, required = spec.plain
    given = names[: len(args)]
    if (
        len(args) > len(names)
        or not kwargs.keys() <= set(names[len(args) :])
        or not required <= {*given, *kwargs}
    ):
        raise ValueError(f"{spec.name}{_shown(spec.signature)} does not take these")
    hints = spec.hints
    try:
        converted = [
            _convert(value, hints.get(name)) for name, value in zip(given, args, strict=True)
        ]
        return converted, {name: _convert(v, hints.get(name)) for name, v in kwargs.items()}
    except msgspec.ValidationError as error:
        raise ValueError(f"{spec.name}: {error}") from None


_EXACT = (int, str, float, bool, bytes)


def _convert(value: Any, hint: Any) -> Any:
    if hint is None or hint is Any or (type(value) is hint and hint in _EXACT):
        return value
    return msgspec.convert(value, hint)


def _bind_general(
    spec: MethodSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    try:
        bound = spec.signature.bind(None, *args, **kwargs)
    except TypeError:
        raise ValueError(f"{spec.name}{_shown(spec.signature)} does not take these") from None
    hints = spec.hints
    try:
        for name, value in list(bound.arguments.items())[1:]:
            hint = hints.get(name)
            kind = spec.signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                bound.arguments[name] = tuple(_convert(v, hint) for v in value)
            elif kind is inspect.Parameter.VAR_KEYWORD:
                bound.arguments[name] = {k: _convert(v, hint) for k, v in value.items()}
            else:
                bound.arguments[name] = _convert(value, hint)
    except msgspec.ValidationError as error:
        raise ValueError(f"{spec.name}: {error}") from None
    return list(bound.args[1:]), dict(bound.kwargs)


def _shown(signature: inspect.Signature) -> str:
    parameters = list(signature.parameters.values())[1:]
    shown = [str(p.replace(annotation=inspect.Parameter.empty)) for p in parameters]
    return "(" + ", ".join(shown) + ")"
