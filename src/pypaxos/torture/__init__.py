"""`pypaxos torture`: a Jepsen-style harness over real `pypaxos node` processes.

It runs the nodes, injects faults and checks the history; `netns` gives each node its own
network namespace and makes partitions and packet loss real packet drops.
"""
