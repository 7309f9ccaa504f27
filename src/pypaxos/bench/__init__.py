"""Benchmarks of a real pypaxos cluster: ``pypaxos bench`` and the pieces ``bench/`` reuses.

* ``stats``: percentiles and "median of runs with its spread";
* ``procstat``: CPU time and resident memory of processes, from ``/proc``;
* ``loadgen``: a closed-loop Redis-protocol load generator that records every request's latency;
* ``redis_benchmark``: runs Debian's ``redis-benchmark`` and parses its CSV;
* ``cluster_bench``: starts a local cluster and measures it; ``cmd``: the command line;
* ``redis_server``: a ``redis-server`` started for a benchmark, and its load time on restart;
* ``stall``: the longest interval without a commit, and leader changes, during a run;
* ``scale``: the large-data scenario (throughput, stalls, memory per key and recovery at
  growing keyspaces, pypaxos and Redis).

The measurement code lives in the installed package (not only in ``bench/``) so that
``pypaxos bench`` works from any directory and the smoke test in ``tests/bench`` can import it.
"""
