"""`pypaxos torture`: a Jepsen-style harness over real `pypaxos node` processes.

It runs the nodes, injects faults and checks the history.  The parts:

- `cmd` the command line; `run` one run from start to verdict;
- `hosts` where processes live and their addresses: loopback, or `netns` (one network
  namespace per node, partitions and packet loss as real packet drops);
- `cluster` every process of a run (nodes, proxies, the client agent), started and stopped by
  pid; `proxy` the fault-injecting TCP proxy in front of every node (delay, duplication,
  reordering; partitions and loss too in loopback mode);
- `nemesis` the faults; `clock` a node whose loop clock can be jumped and skewed; `disk` the
  damage done to a killed node's log before it restarts;
- `agent` the clients: workload, history, status polls and the final reads.
"""
