"""Symmetry reduction: store one state per orbit under renaming the acceptors.

Soundness: the acceptors of a ``SynodConfig`` are interchangeable (same code, same initial
state, no actor treats one acceptor id differently: proposers and learners keep them only as
dict keys and set members, the majority counts them, the invariants only count acceptances), so
renaming them maps every execution to an execution, and a state violates an invariant iff its
renaming does.  Then one representative per orbit finds a violation iff the full search does
(Ip and Dill, "Better verification through symmetry", FMSD 9, 1996), and BFS over
representatives still finds a shortest one.  Proposers are not renamed: a ballot embeds its
proposer's id and each proposes its own value.  A renamed state not already interned means the
config is not symmetric, and the checker raises rather than reduce unsoundly.

More (how a state is renamed, the representative): docs/testing.md, 'Inside the fast paths'.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable

import msgspec

from pypaxos.core.messages import Message
from pypaxos.modelcheck.model import SynodModel

State = tuple[int, ...]

_CHUNK_BITS = 8


class Symmetry:
    """The renamings of the acceptors of a closed model, and the representative of a state."""

    def __init__(self, model: SynodModel, remaps: dict[bool, list[list[int]]]) -> None:
        """``remaps``: per crash regime, the search's map of each local state to the one it
        stores (dead states to a representative), applied after each renaming."""
        assert model.closed, "close() the model first: renaming needs every local state"
        self.model = model
        acceptors = model.config.acceptor_ids
        self.count = len(acceptors)  # acceptors are nodes 0..count-1 (``all_ids`` order)
        assert tuple(model.index_of[a] for a in acceptors) == tuple(range(self.count))
        self.perms: list[tuple[int, ...]] = [
            tuple(p) for p in itertools.permutations(range(self.count))
        ]
        self._keys = [self._keys_of(node) for node in range(len(model.ids))]
        # A class id per acceptor local state that does not depend on which acceptor it is.
        classes: dict[Hashable, int] = {}
        self.acceptor_class = [
            [classes.setdefault(key, len(classes)) for key in self._keys[node]]
            for node in range(self.count)
        ]
        raw = [self._local_map(p) for p in self.perms]
        self.local_maps = {
            regime: [
                self._compose(perm, maps, remap) for perm, maps in zip(self.perms, raw, strict=True)
            ]
            for regime, remap in remaps.items()
        }
        self.message_maps = [self._message_map(p) for p in self.perms]
        self.acceptance_maps = [self._acceptance_map(p) for p in self.perms]
        self._network_tables = [self._chunk_tables(m) for m in self.message_maps]
        self._accept_tables = [self._chunk_tables(m) for m in self.acceptance_maps]
        self._candidates: dict[tuple[int, ...], tuple[int, ...]] = {}
        self.inverse = [self.perms.index(self._invert(p)) for p in self.perms]

    # -- building the maps ------------------------------------------------------------------

    def _keys_of(self, node: int) -> list[Hashable]:
        return self.model.local_keys(node)

    def _compose(
        self, perm: tuple[int, ...], maps: list[list[int]], remap: list[list[int]]
    ) -> list[list[int]]:
        targets = [perm[node] if node < self.count else node for node in range(len(maps))]
        return [
            [remap[target][local] for local in mapped]
            for target, mapped in zip(targets, maps, strict=True)
        ]

    @staticmethod
    def _invert(perm: tuple[int, ...]) -> tuple[int, ...]:
        inverse = [0] * len(perm)
        for source, target in enumerate(perm):
            inverse[target] = source
        return tuple(inverse)

    def _rename_id(self, perm: tuple[int, ...], node_id: int) -> int:
        index = self.model.index_of[node_id]
        if index < self.count:
            return self.model.ids[perm[index]]
        return node_id

    def _rename_message(self, perm: tuple[int, ...], msg: Message) -> Message:
        renamed = self._rename_id(perm, msg.sender)
        return msg if renamed == msg.sender else msgspec.structs.replace(msg, sender=renamed)

    def _rename_key(self, perm: tuple[int, ...], node: int, key: Hashable) -> Hashable:
        """A local-state key with every acceptor id in it renamed (see ``volatile_key``)."""
        if node < self.count:
            return key  # an acceptor's state names no acceptor
        assert isinstance(key, tuple)
        volatile, *rest = key
        role = self.model.config.role(self.model.ids[node])
        if role == "proposer":
            *head, promises, accepted_from, chosen = volatile
            promises = tuple(
                (self._rename_id(perm, a), self._rename_message(perm, p)) for a, p in promises
            )
            accepted_from = tuple(sorted(self._rename_id(perm, a) for a in accepted_from))
            volatile = (*head, promises, accepted_from, chosen)
        else:
            decided, latest, votes = volatile
            latest = tuple((self._rename_id(perm, a), vote) for a, vote in latest)
            volatile = (decided, latest, votes)
        return (volatile, *rest)

    def _local_map(self, perm: tuple[int, ...]) -> list[list[int]]:
        """Per node: its local state ids mapped to the renamed node's ids."""
        model = self.model
        out = []
        for node, keys in enumerate(self._keys):
            target = perm[node] if node < self.count else node
            mapped = []
            for key in keys:
                renamed = self._rename_key(perm, node, key)
                local = model.local_id(target, renamed)
                if local is None:
                    raise RuntimeError(f"the model is not symmetric: {renamed!r} is missing")
                mapped.append(local)
            out.append(mapped)
        return out

    def _message_map(self, perm: tuple[int, ...]) -> list[int]:
        model = self.model
        out = []
        for dest, msg in model.messages:
            target = perm[dest] if dest < self.count else dest
            out.append(model.message_id(target, self._rename_message(perm, msg)))
        return out

    def _acceptance_map(self, perm: tuple[int, ...]) -> list[int]:
        model = self.model
        out = []
        for sender, ballot, value in model.acceptances:
            out.append(model.acceptance_id((self._rename_id(perm, sender), ballot, value)))
        return out

    @staticmethod
    def _chunk_tables(mapping: list[int]) -> list[list[int]]:
        """Per 8-bit chunk of a bitmask, the renamed mask of each chunk value."""
        tables = []
        for base in range(0, len(mapping), _CHUNK_BITS):
            bits = mapping[base : base + _CHUNK_BITS]
            table = []
            for chunk in range(1 << len(bits)):
                mask = 0
                for offset, target in enumerate(bits):
                    if chunk >> offset & 1:
                        mask |= 1 << target
                table.append(mask)
            tables.append(table)
        return tables

    # -- renaming states --------------------------------------------------------------------

    @staticmethod
    def _rename_mask(mask: int, tables: list[list[int]]) -> int:
        out = 0
        for table in tables:
            if not mask:
                break
            chunk = mask & 0xFF
            if chunk:
                out |= table[chunk]
            mask >>= _CHUNK_BITS
        return out

    def rename(self, state: State, which: int, regime: bool) -> State:
        """The state with its acceptors renamed by ``perms[which]``."""
        perm = self.perms[which]
        maps = self.local_maps[regime][which]
        n = len(maps)
        locals_ = list(state[:n])
        for node in range(self.count):
            locals_[perm[node]] = maps[node][state[node]]
        for node in range(self.count, n):
            locals_[node] = maps[node][state[node]]
        network = self._rename_mask(state[n], self._network_tables[which])
        accepts = self._rename_mask(state[n + 1], self._accept_tables[which])
        return (*locals_, network, accepts, *state[n + 2 :])

    def rename_input(self, which: int, node: int, code: int) -> tuple[int, int]:
        """An input to ``node`` renamed: the renamed node and the renamed message id."""
        perm = self.perms[which]
        target = perm[node] if node < self.count else node
        return target, self.message_maps[which][code] if code >= 0 else code

    def canonical(self, state: State, regime: bool) -> tuple[State, int]:
        """The orbit's representative and the index of the renaming that gives it."""
        classes = self.acceptor_class
        signature = tuple(classes[node][state[node]] for node in range(self.count))
        candidates = self._candidates.get(signature)
        if candidates is None:
            candidates = self._sorting(signature)
            self._candidates[signature] = candidates
        if len(candidates) == 1:
            which = candidates[0]
            return (state if which == 0 else self.rename(state, which, regime)), which
        best = min((self.rename(state, which, regime), which) for which in candidates)
        return best

    def _sorting(self, signature: tuple[int, ...]) -> tuple[int, ...]:
        """The renamings that put the acceptors' class ids in order (ties give several)."""
        found: dict[tuple[int, ...], list[int]] = {}
        for which, perm in enumerate(self.perms):
            renamed = [0] * self.count
            for node in range(self.count):
                renamed[perm[node]] = signature[node]
            found.setdefault(tuple(renamed), []).append(which)
        return tuple(found[min(found)])
