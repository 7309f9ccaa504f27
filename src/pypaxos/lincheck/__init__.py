"""Linearizability checkers for key-value histories, written twice, independently.

* ``wgl``: Wing and Gong's search with Lowe's memoisation, per key (the default);
* ``jit``: just-in-time linearization, breadth first over the whole history.

``pypaxos lincheck`` runs either or both on JSON Lines histories (Jepsen's invoke / ok / fail /
info); the simulator and the torture harness hand them the histories they record.
"""
