"""pypaxos: Paxos for Python.

The protocol lives in the pure packages (``core``, ``multi``, ``kv``): they take messages, ticks
and proposals and return effects.  The shells (``sim`` and, later, the runtime, storage and
transport) carry those effects out.
"""

__version__ = "0.1.0"
