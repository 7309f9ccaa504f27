"""The node process: the effectful shell around the pure ``multi.Node`` and ``kv`` machine.

* ``config``: ``cluster.toml`` loading and checking (``docs/runtime-contract.md``).
* ``driver``: the asyncio loop that feeds the node messages, ticks and proposals and carries
  out its effects as the durability contract demands (persist, one sync, send, apply, reply).
* ``router``: gets a client command to the leader (locally or by forwarding) and its outcome
  back, with deadlines and resends on leader change.
* ``commands`` / ``server`` / ``resp``: the Redis-protocol client port.
* ``wire``: the runtime's own peer messages and the on-disk encoding of records and snapshots.
* ``metrics``: the Prometheus endpoint.  ``app`` assembles one node; ``node_cmd`` is
  ``pypaxos node``.
"""
