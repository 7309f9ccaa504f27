"""The node process: the effectful shell around the pure ``multi.Node`` and ``kv`` machine.

* ``config``: the one model of ``cluster.toml``: loading, checking and writing it.
* ``identity``: which cluster a data directory belongs to, checked at every start.
* ``driver``: the asyncio loop that feeds the node messages, ticks and proposals and carries
  out its effects as the durability contract demands (persist, one sync, send, apply, reply).
* ``router``: gets a client command to the leader (locally or by forwarding) and its outcome
  back, with deadlines and resends on leader change.
* ``commands`` / ``server``: the Redis-protocol client port (the codec is ``transport.resp``);
  ``auth``: its users, roles and password hashes.
* ``wire``: the runtime's own peer messages and the on-disk encoding of records and snapshots.
* ``metrics``: the Prometheus endpoint.  ``app`` assembles one node (``pypaxos node``).
* ``objects_port``: the client port of a node replicating ``pypaxos.objects`` (``PAXOS.CALL``,
  ``PAXOS.QUERY``); ``embedded``: such a node inside the application's process (``serve``).
"""
