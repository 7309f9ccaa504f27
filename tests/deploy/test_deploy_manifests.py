"""``pypaxos deploy``: the manifests and ``cluster.toml`` it writes, read back independently."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from yaml_subset import load_all

from pypaxos.cli.deploy import compose_yaml, write_deployment
from pypaxos.cli.deploy_manifests import DeploySpec, to_yaml
from pypaxos.cli.main import main
from pypaxos.runtime.auth import Role, password_matches
from pypaxos.runtime.config import load_config, parse_config
from pypaxos.transport.auth import read_secret

ROOT = Path(__file__).resolve().parents[2]


def _by_kind(documents: list[Any]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        kinds.setdefault(document["kind"], []).append(document)
    return kinds


def _write_k8s(out: Path, **options: Any) -> dict[str, list[dict[str, Any]]]:
    assert main(["deploy", "k8s", "--out", str(out), *_flags(options)]) == 0
    return _by_kind(load_all((out / "pypaxos.yaml").read_text()))


def _flags(options: dict[str, Any]) -> list[str]:
    return [part for key, value in options.items() for part in (f"--{key}", str(value))]


def test_kubernetes_objects_hold_a_startable_protected_cluster(tmp_path: Path) -> None:
    kinds = _write_k8s(tmp_path / "out", nodes=5, namespace="db", name="kv")
    assert sorted(kinds) == [
        "ConfigMap",
        "PodDisruptionBudget",
        "Secret",
        "Service",
        "StatefulSet",
    ]
    (stateful_set,) = kinds["StatefulSet"]
    assert stateful_set["spec"]["replicas"] == 5
    assert stateful_set["spec"]["podManagementPolicy"] == "Parallel"
    assert stateful_set["spec"]["serviceName"] == "kv-peers"
    (claim,) = stateful_set["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    (pdb,) = kinds["PodDisruptionBudget"]
    assert pdb["spec"]["maxUnavailable"] == 1
    services = {service["metadata"]["name"]: service["spec"] for service in kinds["Service"]}
    assert services["kv-peers"]["clusterIP"] == "None"
    assert services["kv-peers"]["publishNotReadyAddresses"] is True
    assert [port["name"] for port in services["kv"]["ports"]] == ["client"]
    for kind in kinds.values():
        for document in kind:
            assert document["metadata"]["namespace"] == "db"

    pod = stateful_set["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    metrics_port = {port["name"]: port["containerPort"] for port in container["ports"]}["metrics"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/live", "port": metrics_port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": metrics_port}
    assert container["securityContext"]["runAsNonRoot"] is True

    # The ConfigMap's cluster.toml is what the nodes load: it must start every member.
    (config_map,) = kinds["ConfigMap"]
    path = tmp_path / "cluster.toml"
    path.write_text(config_map["data"]["cluster.toml"])
    config = load_config(path)
    assert config.member_ids == (1, 2, 3, 4, 5)
    for ordinal, member in enumerate(config.members):
        assert member.peer == f"kv-{ordinal}.kv-peers.db.svc.cluster.local:7101"
        assert member.client_bind == "0.0.0.0:7001"
        config.check_protected(member.id)  # no ConfigError: clients must log in
    assert config.peer_secret_file == Path("/run/pypaxos/peer.secret")
    (user,) = config.users
    assert user.role is Role.ADMIN

    secrets = {secret["metadata"]["name"]: secret["stringData"] for secret in kinds["Secret"]}
    password = secrets["kv-client"]["password"]
    assert password == (tmp_path / "out" / "password").read_text().strip()
    assert password_matches(user.password_hash, password.encode())
    secret_file = tmp_path / "out" / "secrets" / "peer-secret"
    assert bytes.fromhex(secrets["kv-peer"]["peer-secret"]) == bytes.fromhex(
        secret_file.read_text()
    )
    assert stat.S_IMODE((tmp_path / "out" / "pypaxos.yaml").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o700


def test_regenerating_keeps_the_password_and_the_peer_secret(tmp_path: Path) -> None:
    first = _write_k8s(tmp_path, image="example/pypaxos:1")
    second = _write_k8s(tmp_path, image="example/pypaxos:2")
    assert [s["stringData"] for s in first["Secret"]] == [s["stringData"] for s in second["Secret"]]
    image = second["StatefulSet"][0]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "example/pypaxos:2"


def test_a_damaged_kept_secret_is_refused_not_used(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "peer-secret").write_text("not hex\n")
    assert main(["deploy", "k8s", "--out", str(tmp_path)]) == 2


@pytest.mark.parametrize("bad", [["--name", "Bad_Name"], ["--nodes", "0"], ["--peer-port", "7001"]])
def test_bad_options_are_usage_errors(tmp_path: Path, bad: list[str]) -> None:
    assert main(["deploy", "k8s", "--out", str(tmp_path), *bad]) == 2


def test_podman_pods_share_the_template_and_publish_only_on_loopback(tmp_path: Path) -> None:
    spec = DeploySpec(nodes=3, name="t1", publish_port_base=27001)
    write_deployment(spec, "podman", tmp_path)
    pods = load_all((tmp_path / "pods.yaml").read_text())
    (config_map,) = load_all((tmp_path / "configmap.yaml").read_text())
    assert [pod["metadata"]["name"] for pod in pods] == ["t1-0", "t1-1", "t1-2"]
    private_volumes = set()
    for ordinal, pod in enumerate(pods):
        assert pod["spec"]["hostname"] == f"t1-{ordinal}"
        (container,) = pod["spec"]["containers"]
        assert container["ports"] == [
            {
                "name": "client",
                "containerPort": 7001,
                "hostIP": "127.0.0.1",
                "hostPort": 27001 + ordinal,
            }
        ]
        volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
        mounts = {mount["name"] for mount in container["volumeMounts"]}
        assert mounts == set(volumes)
        private_volumes |= {name for name, volume in volumes.items() if "emptyDir" in volume}
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in volumes.values()
            if "persistentVolumeClaim" in v
        ]
        assert claims == [f"data-t1-{ordinal}"]
    assert len(private_volumes) == 3  # podman shares same-named emptyDirs between pods
    path = tmp_path / "in-pod.toml"
    path.write_text(config_map["data"]["cluster.toml"])
    assert [m.peer for m in load_config(path).members] == ["t1-0:7101", "t1-1:7101", "t1-2:7101"]


def test_the_committed_compose_file_is_the_generated_one(tmp_path: Path) -> None:
    committed = (ROOT / "deploy" / "compose.yaml").read_text()
    assert committed == compose_yaml(DeploySpec())
    (document,) = load_all(committed)
    assert sorted(document["services"]) == ["pypaxos-0", "pypaxos-1", "pypaxos-2"]
    for service in document["services"].values():
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    write_deployment(DeploySpec(), "compose", tmp_path)
    assert (tmp_path / "compose.yaml").read_text() == committed
    config = load_config(tmp_path / "cluster.toml")
    assert [m.client for m in config.members] == [f"pypaxos-{i}:7001" for i in range(3)]


def test_yaml_round_trips_awkward_strings() -> None:
    awkward = {
        "plain": "app.kubernetes.io/name",
        "reserved": ["true", "no", "null", "On", "~"],
        "numbers": ["7001", "1e5", "0x10", "1Gi", "-1"],
        "punctuation": ["a: b", "# not a comment", "- item", "x #y", "'q'", '"dq"', "", " lead"],
        "lines": "first\n\n  indented\nlast\n",
        "no final newline": "a\nb",
        "two final newlines": "a\n\n",
        "tab": "a\tb\nc\n",
        "empty": {"map": {}, "list": []},
        "ints": [0, -3, 65535],
        "booleans": [True, False, None],
        "nested": [{"a": [{"b": 1, "c": ["d"]}], "e": "f"}, ["g", "h"]],
    }
    assert load_all(to_yaml([awkward, {"second": 1}])) == [awkward, {"second": 1}]


def test_compose_lists_later_ordinals_to_join_on_purpose(tmp_path: Path) -> None:
    written = write_deployment(DeploySpec(nodes=3, max_nodes=5), "compose", tmp_path)
    assert tmp_path / "secrets" / "password" in written  # a joining service logs in with it
    services = load_all((tmp_path / "compose.yaml").read_text())[0]["services"]
    assert sorted(services) == [f"pypaxos-{i}" for i in range(5)]
    for name, service in services.items():
        later = int(name.rsplit("-", 1)[1]) >= 3
        assert service.get("profiles") == (["scale"] if later else None), name
        assert service["environment"]["PYPAXOS_JOIN"].split(",")[0] == "pypaxos-0:7001"
        assert "./secrets/password:/run/secrets/pypaxos/password:ro" in service["volumes"]
    config = (tmp_path / "cluster.toml").read_text()
    assert "initial_members = [1, 2, 3]" in config and "id = 5" in config


def test_the_cluster_toml_text_parses_as_the_config_model(tmp_path: Path) -> None:
    write_deployment(DeploySpec(nodes=1), "compose", tmp_path)
    import tomllib

    raw = tomllib.loads((tmp_path / "cluster.toml").read_text())
    parse_config(raw, tmp_path / "cluster.toml")  # strict: no unknown key, no bad value


# -- the entrypoint script ----------------------------------------------------------------


def _entrypoint(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run deploy/entrypoint.sh with a stand-in ``pypaxos`` that prints its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "pypaxos"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    base = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "PYPAXOS_PEER_SECRET_SOURCE": str(tmp_path / "absent"),
    }
    return subprocess.run(
        ["sh", str(ROOT / "deploy" / "entrypoint.sh"), "--log-level", "DEBUG"],
        env=base | env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(("host", "node_id"), [("pypaxos-0", 1), ("kv-west-12", 13)])
def test_entrypoint_derives_the_id_from_the_host_ordinal(
    tmp_path: Path, host: str, node_id: int
) -> None:
    done = _entrypoint(tmp_path, {"HOSTNAME": host})
    assert done.returncode == 0, done.stderr
    config = "/etc/pypaxos/cluster.toml"
    assert done.stdout.split() == [
        "node",
        "--config",
        config,
        "--id",
        str(node_id),
        "--log-level",
        "DEBUG",
    ]


@pytest.mark.parametrize("host", ["pypaxos", "pypaxos-", "pypaxos-01", "pypaxos-x"])
def test_entrypoint_refuses_a_host_without_an_ordinal(tmp_path: Path, host: str) -> None:
    done = _entrypoint(tmp_path, {"HOSTNAME": host})
    assert done.returncode == 2
    assert done.stdout == ""
    assert _entrypoint(tmp_path, {"HOSTNAME": host, "PYPAXOS_ID": "7"}).stdout.split()[4] == "7"


def test_entrypoint_copies_the_peer_secret_where_the_node_accepts_it(tmp_path: Path) -> None:
    source = tmp_path / "mounted"
    source.write_text("ab" * 32 + "\n")
    source.chmod(0o440)  # as a Kubernetes secret volume with fsGroup leaves it
    copy = tmp_path / "private" / "peer.secret"
    env = {"HOSTNAME": "p-1", "PYPAXOS_PEER_SECRET_SOURCE": str(source)}
    done = _entrypoint(tmp_path, env | {"PYPAXOS_PEER_SECRET": str(copy)})
    assert done.returncode == 0, done.stderr
    assert read_secret(copy) == bytes.fromhex("ab" * 32)
    assert stat.S_IMODE(os.stat(copy).st_mode) == 0o600


def _joining_env(tmp_path: Path, node_id: int, bootstrapped: bool = False) -> dict[str, str]:
    """A cluster.toml with first voters 1-3, a password file, and node ``node_id``'s env."""
    config = tmp_path / "cluster.toml"
    text = 'cluster_id = "c"\ninitial_members = [1, 2, 3]\n'
    config.write_text(text + ("bootstrapped = true\n" if bootstrapped else ""))
    password = tmp_path / "password"
    password.write_text("sesame\n")
    return {
        "PYPAXOS_ID": str(node_id),
        "PYPAXOS_CONFIG": str(config),
        "PYPAXOS_DATA_DIR": str(tmp_path / "data"),
        "PYPAXOS_PASSWORD_SOURCE": str(password),
        "PYPAXOS_JOIN": "p-0.peers:7001,p-1.peers:7001",
        "PYPAXOS_JOIN_USER": "default",
    }


@pytest.mark.parametrize(
    ("node_id", "bootstrapped"), [(4, False), (4, True), (2, True)], ids=["new", "new", "lost"]
)
def test_entrypoint_joins_a_new_node_or_a_first_voter_that_lost_its_data(
    tmp_path: Path, node_id: int, bootstrapped: bool
) -> None:
    done = _entrypoint(tmp_path, _joining_env(tmp_path, node_id, bootstrapped))
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    assert words[5:9] == ["--join", "p-0.peers:7001,p-1.peers:7001", "--user", "default"]
    refused = _entrypoint(tmp_path, _joining_env(tmp_path, 4) | {"PYPAXOS_PASSWORD_SOURCE": "/x"})
    assert refused.returncode == 2 and "password" in refused.stderr


@pytest.mark.parametrize("case", ["first voter at the first start", "has data"])
def test_entrypoint_does_not_join_a_first_voter_at_first_or_a_node_with_data(
    tmp_path: Path, case: str
) -> None:
    env = _joining_env(tmp_path, 4 if case == "has data" else 2)
    if case == "has data":
        node_dir = tmp_path / "data" / "node-4"
        node_dir.mkdir(parents=True)
        (node_dir / "identity.json").write_text("{}")
    done = _entrypoint(tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "--join" not in done.stdout.split()


def test_max_nodes_lists_later_members_and_writes_their_pods(tmp_path: Path) -> None:
    spec = DeploySpec(nodes=3, name="t1", max_nodes=5, bootstrapped=True)
    written = write_deployment(spec, "podman", tmp_path)
    assert {p.name for p in written} >= {"pods.yaml", "pod-3.yaml", "pod-4.yaml", "password"}
    config = load_config(tmp_path / "cluster.toml")
    assert config.member_ids == (1, 2, 3, 4, 5)
    assert config.genesis_voters == (1, 2, 3) and config.bootstrapped
    pod = (tmp_path / "pod-3.yaml").read_text()
    assert "name: t1-3" in pod and "t1-0:7001,t1-1:7001,t1-2:7001" in pod
    assert "name: t1-3" not in (tmp_path / "pods.yaml").read_text()
    assert (tmp_path / "secrets" / "password").read_text() == (tmp_path / "password").read_text()
