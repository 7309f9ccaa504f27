"""The deterministic simulator and the worlds it runs the pure actors in.

* ``simulator``, ``network``, ``disk``, ``faults``: virtual time, a lossy network, a disk that
  loses unsynced writes on a crash, and fault schedules; one seed drives a whole run;
* ``synod`` (with ``checkers``, the single-decree invariants, and ``script``, steps by hand):
  single-decree Paxos under faults;
* ``log_script``: steps real Multi-Paxos nodes by hand (the golden tests/interaction/log);
* ``kv``, ``kv_node``, ``kv_client``, ``kv_faults``: the key-value store on Multi-Paxos under
  faults, checked for linearizability (``pypaxos.lincheck``), agreement and lost writes.
"""
