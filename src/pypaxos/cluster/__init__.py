"""A local pypaxos cluster: ``pypaxos cluster up | status | down`` and the ``LocalCluster`` API.

``config`` plans and reads ``cluster.toml``; ``processes`` starts, finds and stops node
processes by pid file; ``local.LocalCluster`` puts them together and watches the nodes through
``INFO``; ``cmd_up``, ``cmd_status`` and ``cmd_down`` are the command-line faces.  The node
itself is ``pypaxos node`` (``pypaxos.runtime``); the contract between the two sides is
docs/runtime-contract.md.
"""

from pypaxos.cluster.config import ClusterSpec, ConfigError, Member, plan
from pypaxos.cluster.local import ClusterError, LocalCluster, NodeStatus

__all__ = [
    "ClusterError",
    "ClusterSpec",
    "ConfigError",
    "LocalCluster",
    "Member",
    "NodeStatus",
    "plan",
]
