"""``pypaxos cluster up --tls`` with real node processes (uvloop's TLS): certificates made, the
file's ``[tls]`` table written, status asked over TLS, and SIGHUP serving a renewed
certificate; ``pypaxos certs`` on its own."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Clusters
from cryptography import x509

from pypaxos.cli.main import main
from pypaxos.client import Client
from pypaxos.cluster import processes
from pypaxos.runtime.config import load_config
from pypaxos.transport.certs import issue_cluster


def pypaxos(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pypaxos", *args], capture_output=True, text=True, timeout=timeout_s
    )


def served_serial(address: str, context: ssl.SSLContext) -> int:
    host, port = address.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number


@pytest.mark.usefixtures("node_available")
def test_cluster_up_with_tls_serves_tls_and_reloads_on_sighup(
    clusters: Clusters, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    base = processes.find_free_base_port(3)
    up = pypaxos("cluster", "up", "--tls", "--data", str(data), "--base-port", str(base))
    cluster = clusters.adopt(data)
    assert up.returncode == 0, up.stderr + up.stdout
    assert "TLS on" in up.stdout

    config = load_config(data / "cluster.toml")
    assert config.tls is not None and config.tls_enabled and config.tls.peer
    for i in (1, 2, 3):
        key = config.tls.files(i).key_file
        assert key.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600

    status = pypaxos("cluster", "status", "--data", str(data), "--json")
    assert status.returncode == 0 and status.stdout.count('"leader"') == 1, status.stdout

    context = config.tls.client_context()
    with Client(config.client_addresses, ssl=context, timeout_s=5.0) as client:
        client.set("k", "v")
        assert client.get("k") == b"v"

    node = config.member(2).client
    before = served_serial(node, context)
    issue_cluster(data / "tls", [(2, ["127.0.0.1"])], renew=True, client=False)
    renewed = x509.load_pem_x509_certificate((data / "tls" / "node-2.crt").read_bytes())
    (pid,) = processes.node_pids(config, 2)
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while served_serial(node, context) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served_serial(node, context) == renewed.serial_number
    assert processes.node_pids(config, 2) == [pid]  # the same process: no restart

    down = pypaxos("cluster", "down", "--data", str(data))
    assert down.returncode == 0, down.stderr
    assert cluster.running() == {}
    for i in (1, 2, 3):  # TLS on the event loop left nothing to warn about (half-closes)
        log = config.log_file(i).read_text()
        assert "WARNING asyncio" not in log, log
        assert ("TLS files reloaded" in log) == (i == 2)


def test_certs_command_writes_the_table_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(
        'cluster_id = "c"\n[[members]]\nid = 4\npeer = "127.0.0.1:1"\nclient = "localhost:2"\n'
    )
    assert main(["certs", "--config", str(path)]) == 0
    assert "[tls]" in capsys.readouterr().out
    assert load_config(path).tls is None  # shown, not written
    certificate = x509.load_pem_x509_certificate((tmp_path / "tls" / "node-4.crt").read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == ["pypaxos:node:4"]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]

    assert main(["certs", "--config", str(path)]) == 2
    assert "node-4.crt" in capsys.readouterr().err
    assert main(["certs", "--config", str(path), "--renew", "--write-config"]) == 0
    tls = load_config(path).tls
    assert tls is not None and tls.files(4).cert_file == tmp_path / "tls" / "node-4.crt"


def test_a_node_whose_certificate_does_not_load_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(
        'cluster_id = "c"\n[tls]\nca_file = "tls/ca.crt"\ncert_file = "tls/node-{id}.crt"\n'
        'key_file = "tls/node-{id}.key"\n'
        '[[members]]\nid = 1\npeer = "127.0.0.1:1"\nclient = "127.0.0.1:2"\n'
    )
    assert main(["node", "--config", str(path), "--id", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: tls:" in err and "node-1.crt" in err


def test_tls_is_for_a_new_cluster_only(
    clusters: Clusters, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = clusters.make(name="plain")
    data = str(cluster.spec.data_dir)
    assert main(["cluster", "up", "--data", data, "--tls"]) == 2
    assert "pypaxos certs" in capsys.readouterr().err
    assert cluster.running() == {}
