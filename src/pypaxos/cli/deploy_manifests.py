"""The container manifests of a cluster, built from one template for every target.

``pod_spec`` is the template: one node's container (the image's entrypoint derives the node id
from the host name's ordinal), its ports, its probes on the metrics address (``/live`` for
liveness, ``/ready`` for readiness), its volumes (``cluster.toml``, the peer secret, the data
directory) and a locked-down security context.  Each target wraps it:

* ``k8s``: a StatefulSet (stable names ``NAME-0``..., a persistent volume each from
  ``volumeClaimTemplates``, pods started in parallel because none is ready before a quorum
  is up), a headless Service for the peers (publishing not-ready addresses for the same
  reason), a client Service, a PodDisruptionBudget that lets one pod at a time be evicted, a
  ConfigMap with ``cluster.toml`` and Secrets with the peer secret and the client password.
* ``podman``: the same pods as bare Pods for ``podman kube play --network NET
  --configmap FILE``, the secret from a host file (podman's own secret store is not a
  Kubernetes Secret), client ports optionally published on loopback.
* ``compose``: services with the same image, names and mounts for podman or docker compose.

``cluster.toml`` comes from ``runtime.config`` (``new_config`` and ``render_config``), the
same code every other tool writes it with: members bind ``0.0.0.0`` and advertise their
stable DNS names; clients must authenticate, because they connect from beyond loopback.
The YAML is written by ``to_yaml``, a small emitter for the plain data here (no dependency).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pypaxos.runtime.auth import Role, User
from pypaxos.runtime.config import ClusterConfig, Member, new_config, render_config

Target = Literal["k8s", "podman", "compose"]
TARGETS: tuple[Target, ...] = get_args(Target)

CONFIG_DIR = "/etc/pypaxos"  # cluster.toml, from a ConfigMap or a bind mount
DATA_DIR = "/var/lib/pypaxos"  # node-N/ lives here, on the persistent volume
SECRET_MOUNT = "/run/secrets/pypaxos"  # what the orchestrator mounts (entrypoint.sh copies it)
PRIVATE_DIR = "/run/pypaxos"  # the private copy of the peer secret (a memory-backed volume)
PEER_SECRET_KEY = "peer-secret"
PASSWORD_KEY = "password"
RUN_AS_ID = 10001  # the image's pypaxos user and group (deploy/Containerfile)
WILDCARD = "0.0.0.0"
NAME_PATTERN = re.compile(r"[a-z]([-a-z0-9]{0,40}[a-z0-9])?")  # a DNS label, with room


@dataclass(frozen=True, slots=True)
class DeploySpec:
    """What a generated cluster looks like: names, image, ports and storage."""

    nodes: int = 3
    name: str = "pypaxos"
    namespace: str = "default"
    image: str = "localhost/pypaxos:0.1.0"
    client_port: int = 7001
    peer_port: int = 7101
    metrics_port: int = 7201
    storage: str = "1Gi"
    storage_class: str | None = None
    user: str = "default"
    publish_port_base: int | None = None  # podman: client ports on 127.0.0.1:BASE+ordinal
    max_nodes: int | None = None  # ordinals that may join later (scale-up); None: nodes
    bootstrapped: bool = False  # set once the cluster has started: an empty voter refuses

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= 99:
            raise ValueError(f"nodes must be in [1, 99], got {self.nodes}")
        if not self.nodes <= self.members_max <= 99:
            raise ValueError(f"max nodes must be in [{self.nodes}, 99], got {self.max_nodes}")
        for what, text in (("name", self.name), ("namespace", self.namespace)):
            if not NAME_PATTERN.fullmatch(text):
                raise ValueError(f"{what} must be a lower-case DNS label, got {text!r}")
        ports = (self.client_port, self.peer_port, self.metrics_port)
        if len(set(ports)) != 3 or not all(1 <= port <= 65535 for port in ports):
            raise ValueError(f"ports must be three different numbers in [1, 65535]: {ports}")
        if self.publish_port_base is not None and not (
            1024 <= self.publish_port_base <= 65535 - self.members_max
        ):
            raise ValueError(f"publish port base out of range: {self.publish_port_base}")

    @property
    def members_max(self) -> int:
        """Ordinals ``0..members_max-1`` have a ``[[members]]`` entry; the first ``nodes`` are
        the first voters (``initial_members``), the others join when started."""
        return self.max_nodes if self.max_nodes is not None else self.nodes

    def join_endpoints(self, target: Target) -> str:
        """The first voters' client addresses, where a joining pod asks to be added."""
        hosts = (self.host(ordinal, target) for ordinal in range(self.nodes))
        return ",".join(f"{host}:{self.client_port}" for host in hosts)

    @property
    def peers_service(self) -> str:
        return f"{self.name}-peers"

    @property
    def labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": "pypaxos", "app.kubernetes.io/instance": self.name}

    def pod_name(self, ordinal: int) -> str:
        return f"{self.name}-{ordinal}"

    def host(self, ordinal: int, target: Target) -> str:
        """The stable name others reach pod ``ordinal`` by."""
        if target == "k8s":
            domain = f"{self.peers_service}.{self.namespace}.svc.cluster.local"
            return f"{self.pod_name(ordinal)}.{domain}"
        return self.pod_name(ordinal)  # podman and compose: the pod or service name


def cluster_config(spec: DeploySpec, target: Target, password_hash: str) -> ClusterConfig:
    """The cluster's ``cluster.toml`` model: node ``ordinal + 1`` advertises its stable name,
    binds every interface, and clients log in as ``spec.user`` (an admin)."""
    members = tuple(
        Member(
            ordinal + 1,
            peer=f"{spec.host(ordinal, target)}:{spec.peer_port}",
            client=f"{spec.host(ordinal, target)}:{spec.client_port}",
            metrics=f"{WILDCARD}:{spec.metrics_port}",
            peer_listen=f"{WILDCARD}:{spec.peer_port}",
            client_listen=f"{WILDCARD}:{spec.client_port}",
        )
        for ordinal in range(spec.members_max)
    )
    config = new_config(
        Path(CONFIG_DIR) / "cluster.toml",
        spec.name,
        members,
        data_dir=Path(DATA_DIR),
        peer_secret_file=Path(PRIVATE_DIR) / "peer.secret",
    )
    initial = tuple(range(1, spec.nodes + 1)) if spec.members_max > spec.nodes else ()
    return dataclasses.replace(
        config,
        users=(User(spec.user, Role.ADMIN, password_hash),),
        initial_members=initial,
        bootstrapped=spec.bootstrapped,
    )


def config_text(spec: DeploySpec, target: Target, password_hash: str) -> str:
    header = (
        "# Generated by `pypaxos deploy`.  Clients connect from other hosts, so protected mode\n"
        f"# wants them to AUTH: as {spec.user!r}, with the password the generator kept (and put\n"
        f"# in the {spec.name}-client Secret for Kubernetes).\n"
    )
    return header + render_config(cluster_config(spec, target, password_hash))


def pod_spec(spec: DeploySpec, target: Target, ordinal: int | None = None) -> dict[str, Any]:
    """The template every target shares (``ordinal``: a bare pod's, for podman)."""
    metrics = spec.metrics_port
    ports = [
        _port("client", spec.client_port, spec, ordinal),
        _port("peer", spec.peer_port, spec, None),
        _port("metrics", spec.metrics_port, spec, None),
    ]
    if target != "k8s":
        # podman kube play (before 5.0) publishes every declared port on every host
        # interface; declare only what is meant to be published, on loopback.
        ports = [port for port in ports if "hostPort" in port]
    container: dict[str, Any] = {
        "name": "node",
        "image": spec.image,
        # A pod whose id is not a first voter joins with these (entrypoint.sh), when its data
        # directory is empty: a StatefulSet scaled up adds a learner, promoted by the operator.
        "env": [
            {"name": "PYPAXOS_JOIN", "value": spec.join_endpoints(target)},
            {"name": "PYPAXOS_JOIN_USER", "value": spec.user},
        ],
        "ports": ports,
        # The process is alive while its event loop answers; a node cut off from its leader
        # is not broken, and restarting it would not help, so liveness does not ask more.
        "startupProbe": _probe("/live", metrics, period_s=2, failures=90),
        "livenessProbe": _probe("/live", metrics, period_s=10, failures=3),
        "readinessProbe": _probe("/ready", metrics, period_s=5, failures=2),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "secrets", "mountPath": SECRET_MOUNT, "readOnly": True},
            {"name": "private", "mountPath": PRIVATE_DIR},
            {"name": "data", "mountPath": DATA_DIR},
        ],
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_ID,
            "runAsGroup": RUN_AS_ID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if target == "k8s":
        container["resources"] = {"requests": {"cpu": "100m", "memory": "128Mi"}}
        # The peer secret, and the client password a joining pod logs in with.
        secrets: dict[str, Any] = {
            "projected": {
                "defaultMode": 0o400,
                "sources": [
                    {
                        "secret": {
                            "name": f"{spec.name}-peer",
                            "items": [{"key": PEER_SECRET_KEY, "path": PEER_SECRET_KEY}],
                        }
                    },
                    {
                        "secret": {
                            "name": f"{spec.name}-client",
                            "items": [{"key": PASSWORD_KEY, "path": PASSWORD_KEY}],
                        }
                    },
                ],
            }
        }
    else:
        secrets = {"hostPath": {"path": "SECRETS_DIR", "type": "Directory"}}
    pod: dict[str, Any] = {
        # The volumes' group, changed only when the root of one differs (not file by file at
        # every start, which is slow on a large data volume).
        "securityContext": {"fsGroup": RUN_AS_ID, "fsGroupChangePolicy": "OnRootMismatch"},
        "terminationGracePeriodSeconds": 30,
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": f"{spec.name}-config"}},
            {"name": "secrets", **secrets},
            {"name": "private", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
        ],
    }
    if target == "k8s":
        # Spread the members over machines, so that one machine lost is one member lost.
        term = {"labelSelector": {"matchLabels": spec.labels}, "topologyKey": _HOST_KEY}
        pod["affinity"] = {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 100, "podAffinityTerm": term}
                ]
            }
        }
    else:
        assert ordinal is not None
        pod["hostname"] = spec.pod_name(ordinal)
        # The test (or the operator) restarts a stopped pod itself, so a kill stays a kill.
        pod["restartPolicy"] = "Never"
        claim = {"claimName": f"data-{spec.pod_name(ordinal)}"}
        pod["volumes"].append({"name": "data", "persistentVolumeClaim": claim})
    return pod


_HOST_KEY = "kubernetes.io/hostname"


def _port(name: str, port: int, spec: DeploySpec, ordinal: int | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "containerPort": port}
    if ordinal is not None and spec.publish_port_base is not None:
        entry |= {"hostIP": "127.0.0.1", "hostPort": spec.publish_port_base + ordinal}
    return entry


def _probe(path: str, port: int, *, period_s: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period_s,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def configmap(spec: DeploySpec, text: str) -> dict[str, Any]:
    return _object("v1", "ConfigMap", f"{spec.name}-config", spec) | {
        "data": {"cluster.toml": text}
    }


def kubernetes_objects(
    spec: DeploySpec, text: str, peer_secret_hex: str, password: str
) -> list[dict[str, Any]]:
    """Everything ``kubectl apply -f`` needs, in the order it should be created."""
    selector = {"matchLabels": spec.labels}
    ports = [
        {"name": "client", "port": spec.client_port, "targetPort": "client"},
        {"name": "peer", "port": spec.peer_port, "targetPort": "peer"},
        {"name": "metrics", "port": spec.metrics_port, "targetPort": "metrics"},
    ]
    claim = {
        "metadata": {"name": "data", "labels": spec.labels},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": spec.storage}},
            **({"storageClassName": spec.storage_class} if spec.storage_class else {}),
        },
    }
    stateful_set = _object("apps/v1", "StatefulSet", spec.name, spec) | {
        "spec": {
            "serviceName": spec.peers_service,
            "replicas": spec.nodes,
            # In order, pod 0 would wait to be ready before pod 1 is made: never, since
            # readiness needs a leader and a leader needs a majority.
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": selector,
            "template": {"metadata": {"labels": spec.labels}, "spec": pod_spec(spec, "k8s")},
            "volumeClaimTemplates": [claim],
        }
    }
    return [
        configmap(spec, text),
        _object("v1", "Secret", f"{spec.name}-peer", spec)
        | {"type": "Opaque", "stringData": {PEER_SECRET_KEY: peer_secret_hex}},
        _object("v1", "Secret", f"{spec.name}-client", spec)
        | {"type": "Opaque", "stringData": {"username": spec.user, PASSWORD_KEY: password}},
        _object("v1", "Service", spec.peers_service, spec)
        | {
            "spec": {
                "clusterIP": "None",
                # Peers must find each other before any is ready (readiness needs a leader).
                "publishNotReadyAddresses": True,
                "selector": spec.labels,
                "ports": ports,
            }
        },
        _object("v1", "Service", spec.name, spec)
        | {"spec": {"selector": spec.labels, "ports": ports[:1]}},
        _object("policy/v1", "PodDisruptionBudget", spec.name, spec)
        | {"spec": {"maxUnavailable": 1, "selector": selector}},
        stateful_set,
    ]


def podman_pods(
    spec: DeploySpec, secrets_dir: Path, ordinals: range | None = None
) -> list[dict[str, Any]]:
    """The StatefulSet's pods as bare Pods, for ``podman kube play`` (``ordinals``: the first
    voters' by default; a later one's pod joins the running cluster)."""
    pods = []
    for ordinal in ordinals if ordinals is not None else range(spec.nodes):
        pod = pod_spec(spec, "podman", ordinal)
        name = spec.pod_name(ordinal)
        for volume in pod["volumes"]:
            if "hostPath" in volume:
                volume["hostPath"]["path"] = str(secrets_dir)
            if "emptyDir" in volume:
                # podman (before 5.0) makes an emptyDir a named volume, shared by every pod
                # that names it the same: give each pod its own.
                _rename_volume(pod, volume["name"], f"{name}-{volume['name']}")
        pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": spec.labels},
                "spec": pod,
            }
        )
    return pods


def _rename_volume(pod: dict[str, Any], old: str, new: str) -> None:
    for volume in pod["volumes"]:
        if volume["name"] == old:
            volume["name"] = new
    for container in pod["containers"]:
        for mount in container["volumeMounts"]:
            if mount["name"] == old:
                mount["name"] = new


def compose_document(spec: DeploySpec) -> dict[str, Any]:
    """A compose file with the pods' names, image, mounts and ports (run from its folder,
    next to the ``cluster.toml`` and ``secrets/`` that ``pypaxos deploy compose`` writes).

    The root file system stays writable: the private copy of the peer secret goes to the
    image's own ``/run/pypaxos``, since compose has no portable way to give a memory-backed
    mount to the unprivileged user (podman ignores a tmpfs ``mode``, docker has no ``U``)."""
    services: dict[str, Any] = {}
    for ordinal in range(spec.members_max):
        name = spec.pod_name(ordinal)
        published = spec.client_port + ordinal
        service: dict[str, Any] = {
            "image": spec.image,
            "hostname": name,
            # A service that is not a first voter joins with these when its volume is empty
            # (entrypoint.sh), logging in with the mounted password.
            "environment": {
                "PYPAXOS_JOIN": spec.join_endpoints("compose"),
                "PYPAXOS_JOIN_USER": spec.user,
            },
            "volumes": [
                f"./cluster.toml:{CONFIG_DIR}/cluster.toml:ro",
                f"./secrets/{PEER_SECRET_KEY}:{SECRET_MOUNT}/{PEER_SECRET_KEY}:ro",
                f"./secrets/{PASSWORD_KEY}:{SECRET_MOUNT}/{PASSWORD_KEY}:ro",
                f"{name}-data:{DATA_DIR}",
            ],
            # Clients on the compose host's loopback only; the peers use the compose network.
            "ports": [f"127.0.0.1:{published}:{spec.client_port}"],
            "restart": "unless-stopped",
        }
        if ordinal >= spec.nodes:  # started on purpose: `compose --profile scale up -d NAME`
            service["profiles"] = ["scale"]
        services[name] = service
    return {
        "name": spec.name,
        "services": services,
        "volumes": {f"{spec.pod_name(ordinal)}-data": {} for ordinal in range(spec.members_max)},
    }


def _object(api: str, kind: str, name: str, spec: DeploySpec) -> dict[str, Any]:
    metadata = {"name": name, "namespace": spec.namespace, "labels": spec.labels}
    return {"apiVersion": api, "kind": kind, "metadata": metadata}


# -- YAML -----------------------------------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def to_yaml(documents: list[dict[str, Any]]) -> str:
    """``documents`` as YAML, ``---`` between them: block style, strings plain where that
    cannot be misread and JSON-quoted otherwise, multi-line strings as literal blocks."""
    return "---\n".join("\n".join(_block(document, 0)) + "\n" for document in documents)


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED:
            return value
        return json.dumps(value)
    raise TypeError(f"no YAML form for {type(value).__name__}")


def _block(value: dict[str, Any] | list[Any], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            lines += _entry(f"{pad}{_scalar(key)}:", item, indent)
        return lines
    for item in value:
        if isinstance(item, dict) and item:
            inner = _block(item, indent + 2)
            lines.append(f"{pad}- {inner[0].lstrip()}")
            lines += inner[1:]
        else:
            lines += _entry(f"{pad}-", item, indent)
    return lines


def _entry(head: str, item: object, indent: int) -> list[str]:
    if isinstance(item, dict | list):
        if not item:
            return [f"{head} {'{}' if isinstance(item, dict) else '[]'}"]
        return [head, *_block(item, indent + 2)]
    if isinstance(item, str) and _literal_block_fits(item):
        pad = " " * (indent + 2)
        body = item.removesuffix("\n").split("\n")
        return [f"{head} |", *(f"{pad}{line}" if line else "" for line in body)]
    return [f"{head} {_scalar(item)}"]


def _literal_block_fits(text: str) -> bool:
    """Whether ``text`` reads back unchanged from a ``|`` block: several lines ending in one
    newline, the first not indented, no line of spaces only, no tabs or carriage returns."""
    if "\n" not in text.removesuffix("\n") or not text.endswith("\n") or text.endswith("\n\n"):
        return False
    lines = text.removesuffix("\n").split("\n")
    if lines[0].startswith(" ") or not all(line.isprintable() for line in lines):
        return False
    return all(line.strip() or not line for line in lines)
