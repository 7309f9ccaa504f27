"""``pypaxos deploy k8s|podman|compose --out DIR``: a container cluster's files, from one template.

Writes into ``DIR`` (made private to its owner):

* ``cluster.toml``: every member binds ``0.0.0.0`` and advertises its stable name; clients
  must authenticate as ``--user`` (an admin), whose password is ``DIR/password``.
* ``secrets/peer-secret``: the peer secret (hex).  ``DIR`` keeps other local users
  out; the file itself is readable so that a container's unprivileged user can read its
  bind-mounted copy (compose, podman).
* ``k8s``: ``pypaxos.yaml``, for ``kubectl apply -f`` (a StatefulSet, two Services, a
  PodDisruptionBudget, a ConfigMap and two Secrets; private, as it holds the secrets).
  ``podman``: ``pods.yaml`` and ``configmap.yaml``, for ``podman kube play --network NET
  --configmap configmap.yaml pods.yaml``.  ``compose``: ``compose.yaml``.

An existing password and peer secret in ``DIR`` are kept, so regenerating (a new image, more
storage) does not split a running cluster into two that cannot authenticate each other.
"""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from pypaxos.cli.deploy_manifests import (
    PASSWORD_KEY,
    PEER_SECRET_KEY,
    TARGETS,
    DeploySpec,
    Target,
    compose_document,
    config_text,
    configmap,
    kubernetes_objects,
    podman_pods,
    to_yaml,
)
from pypaxos.cli.usage import UsageError
from pypaxos.runtime.auth import hash_password
from pypaxos.transport.auth import SECRET_BYTES_MIN

DEFAULTS = DeploySpec()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        choices=TARGETS,
        help="k8s (kubectl apply), podman (podman kube play) or compose (podman-compose, docker)",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to write")
    parser.add_argument(
        "--nodes", type=int, default=DEFAULTS.nodes, help=f"members (default {DEFAULTS.nodes})"
    )
    parser.add_argument(
        "--name",
        default=DEFAULTS.name,
        help=f"the cluster id, and the prefix of every object and pod (default {DEFAULTS.name})",
    )
    parser.add_argument(
        "--namespace", default=DEFAULTS.namespace, help="Kubernetes namespace (default default)"
    )
    parser.add_argument(
        "--image", default=DEFAULTS.image, help=f"the node image (default {DEFAULTS.image})"
    )
    parser.add_argument(
        "--storage",
        default=DEFAULTS.storage,
        help=f"Kubernetes: each member's volume size (default {DEFAULTS.storage})",
    )
    parser.add_argument(
        "--storage-class", help="Kubernetes: the volumes' storage class (default: the cluster's)"
    )
    parser.add_argument(
        "--user",
        default=DEFAULTS.user,
        help=f"the clients' user name, an admin (default {DEFAULTS.user})",
    )
    for kind in ("client", "peer", "metrics"):
        default = getattr(DEFAULTS, f"{kind}_port")
        parser.add_argument(
            f"--{kind}-port", type=int, default=default, metavar="PORT", help=f"(default {default})"
        )
    parser.add_argument(
        "--publish-port-base",
        type=int,
        metavar="PORT",
        help="podman: publish pod N's client port on 127.0.0.1:PORT+N",
    )
    parser.add_argument(
        "--max-nodes",
        type=int,
        metavar="N",
        help="list N members in cluster.toml, the first --nodes of them the first voters: "
        "pods past --nodes join as learners (scale-up; podman: pod-ORDINAL.yaml each)",
    )
    parser.add_argument(
        "--bootstrapped",
        action="store_true",
        help="write bootstrapped = true (once the cluster has started): a first voter whose "
        "volume was lost then refuses to start instead of voting with nothing",
    )


def run(args: argparse.Namespace) -> int:
    target: Target = args.target
    try:
        spec = DeploySpec(
            nodes=args.nodes,
            name=args.name,
            namespace=args.namespace,
            image=args.image,
            client_port=args.client_port,
            peer_port=args.peer_port,
            metrics_port=args.metrics_port,
            storage=args.storage,
            storage_class=args.storage_class,
            user=args.user,
            publish_port_base=args.publish_port_base,
            max_nodes=args.max_nodes,
            bootstrapped=args.bootstrapped,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    out: Path = args.out
    written = write_deployment(spec, target, out)
    for path in written:
        print(path)
    print(f"# {_next_step(target, out)}")
    return 0


def write_deployment(spec: DeploySpec, target: Target, out: Path) -> list[Path]:
    """Write ``target``'s files for ``spec`` into ``out``; the paths written, in order."""
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    password = _kept_or_new(out / "password", lambda: secrets.token_urlsafe(24), 0o600)
    secret_dir = out / "secrets"
    secret_dir.mkdir(exist_ok=True)
    secret_dir.chmod(0o755)
    secret_hex = _kept_or_new(
        secret_dir / PEER_SECRET_KEY, lambda: secrets.token_hex(SECRET_BYTES_MIN), 0o644
    )
    try:
        if len(bytes.fromhex(secret_hex)) < SECRET_BYTES_MIN:
            raise ValueError
    except ValueError:
        raise UsageError(
            f"{secret_dir / PEER_SECRET_KEY} does not hold a hex secret of at least "
            f"{SECRET_BYTES_MIN} bytes; remove it to make a new one"
        ) from None
    text = config_text(spec, target, hash_password(password))
    files: dict[str, tuple[str, int]] = {"cluster.toml": (text, 0o644)}
    if target == "k8s":
        objects = kubernetes_objects(spec, text, secret_hex, password)
        files["pypaxos.yaml"] = (SCALING_NOTE + to_yaml(objects), 0o600)
    elif target == "podman":
        files["configmap.yaml"] = (to_yaml([configmap(spec, text)]), 0o644)
        files["pods.yaml"] = (to_yaml(podman_pods(spec, secret_dir.resolve())), 0o644)
    else:
        files["compose.yaml"] = (compose_yaml(spec), 0o644)
    if target != "k8s":
        # A joining pod logs in with it (entrypoint.sh); Kubernetes projects the client Secret.
        _write(secret_dir / PASSWORD_KEY, password + "\n", 0o644)
    if target == "podman":
        for ordinal in range(spec.nodes, spec.members_max):
            pod = podman_pods(spec, secret_dir.resolve(), range(ordinal, ordinal + 1))
            files[f"pod-{ordinal}.yaml"] = (to_yaml(pod), 0o644)
    written = [out / "password", secret_dir / PEER_SECRET_KEY]
    if target != "k8s":
        written.append(secret_dir / PASSWORD_KEY)
    for name, (body, mode) in files.items():
        _write(out / name, body, mode)
        written.append(out / name)
    return written


SCALING_NOTE = (
    "# Generated by `pypaxos deploy k8s`.  Scaling is a membership change, not only a replica\n"
    "# count: up to --max-nodes, a new ordinal joins as a learner by itself (entrypoint.sh),\n"
    "# then `pypaxos member promote N`; to scale down, `pypaxos member remove N` for the\n"
    "# highest ordinal first, then lower replicas and delete its claim.  Once started, generate\n"
    "# again with --bootstrapped and apply the ConfigMap.  docs/operations.md, 'Scaling'.\n"
)


def compose_yaml(spec: DeploySpec) -> str:
    header = (
        "# Generated by `pypaxos deploy compose`, which writes the cluster.toml and secrets/\n"
        "# (peer secret, client password) this file mounts; run `podman compose up -d` (or\n"
        "# docker compose) next to them; a later ordinal joins with `compose --profile scale\n"
        "# up -d NAME`.  docs/operations.md, 'Containers and Kubernetes'.\n"
    )
    return header + to_yaml([compose_document(spec)])


def _kept_or_new(path: Path, make: Callable[[], str], mode: int) -> str:
    if path.exists():
        text = path.read_text().strip()
        if not text:
            raise UsageError(f"{path} is empty; remove it to make a new one")
        path.chmod(mode)
        return text
    value = make()
    _write(path, value + "\n", mode)
    return value


def _write(path: Path, body: str, mode: int) -> None:
    """Write ``path`` whole (a temporary file renamed over it) with permissions ``mode``."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w") as file:
        file.write(body)
    os.chmod(temporary, mode)  # whatever the umask took away
    temporary.replace(path)


def _next_step(target: Target, out: Path) -> str:
    if target == "k8s":
        return f"kubectl apply -f {out / 'pypaxos.yaml'}"
    if target == "podman":
        return (
            f"podman network create NET && podman kube play --network NET "
            f"--configmap {out / 'configmap.yaml'} {out / 'pods.yaml'}"
        )
    return f"cd {out} && podman compose up -d"
