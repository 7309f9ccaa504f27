"""Single-decree Paxos as pure actors: no I/O, no clock, no global randomness.

Each role (``Acceptor``, ``Proposer``, ``Learner``) takes one input at a time and returns a list
of effects (``Send``, ``Persist``, ``SetTimer``, ``CancelTimer``, ``Decide``) for a shell to carry
out.  See ``effects`` for the durability contract every shell honours.
"""

from pypaxos.core.acceptor import Acceptor, AcceptorState
from pypaxos.core.bugs import PlantedBug, SynodBug, UnknownBug, parse_bugs
from pypaxos.core.effects import CancelTimer, Decide, Effect, Persist, Send, SetTimer
from pypaxos.core.learner import Learner, LearnerState
from pypaxos.core.messages import Accept, Accepted, Decided, Message, Nack, Prepare, Promise, Query
from pypaxos.core.proposer import Phase, Proposer, ProposerState, ProposerTiming
from pypaxos.core.quorum import FlexibleGrid, Majority, QuorumSystem
from pypaxos.core.synod import SynodActor, SynodConfig
from pypaxos.core.types import NULL_BALLOT, Ballot, Value

__all__ = [
    "NULL_BALLOT",
    "Accept",
    "Accepted",
    "Acceptor",
    "AcceptorState",
    "Ballot",
    "CancelTimer",
    "Decide",
    "Decided",
    "Effect",
    "FlexibleGrid",
    "Learner",
    "LearnerState",
    "Majority",
    "Message",
    "Nack",
    "Persist",
    "Phase",
    "PlantedBug",
    "Prepare",
    "Promise",
    "Proposer",
    "ProposerState",
    "ProposerTiming",
    "Query",
    "QuorumSystem",
    "Send",
    "SetTimer",
    "SynodActor",
    "SynodBug",
    "SynodConfig",
    "UnknownBug",
    "Value",
    "parse_bugs",
]
