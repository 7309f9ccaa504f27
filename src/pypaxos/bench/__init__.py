"""Benchmarks of a real pypaxos cluster: ``pypaxos bench`` and the pieces ``bench/`` reuses.

* ``stats``: percentiles and "median of runs with its spread";
* ``procstat``: CPU time and resident memory of processes, from ``/proc``;
* ``loadgen``: a closed-loop Redis-protocol load generator that records every request's latency;
* ``redis_benchmark``: runs Debian's ``redis-benchmark`` and parses its CSV;
* ``cluster_bench``: starts a local cluster and measures it; ``cmd``: the command line.

The measurement code lives in the installed package (not only in ``bench/``) so that
``pypaxos bench`` works from any directory and the smoke test in ``tests/bench`` can import it.
"""
