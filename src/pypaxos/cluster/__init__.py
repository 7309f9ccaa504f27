"""A local pypaxos cluster: the ``LocalCluster`` API behind ``pypaxos cluster up|status|down``.

``config.plan`` lays out a new cluster's addresses; ``processes`` starts, finds and stops node
processes by pid file; ``local.LocalCluster`` puts them together and watches the nodes through
``INFO``.  The cluster's description is ``runtime.config.ClusterConfig``, the one model of
``cluster.toml``; the node itself is ``pypaxos node``.
"""

from pypaxos.cluster.config import plan
from pypaxos.cluster.local import ClusterError, LocalCluster, NodeStatus
from pypaxos.runtime.config import ClusterConfig, ConfigError, Member

__all__ = [
    "ClusterConfig",
    "ClusterError",
    "ConfigError",
    "LocalCluster",
    "Member",
    "NodeStatus",
    "plan",
]
