"""The ``[tls]`` table of ``cluster.toml``: strict, relative to the file, and round-tripped."""

from __future__ import annotations

from pathlib import Path

import pytest

from pypaxos.runtime.config import ConfigError, load_config, render_config
from pypaxos.runtime.tls import TlsConfig

MEMBERS = """
[[members]]
id = 1
peer = "127.0.0.1:7101"
client = "127.0.0.1:7001"

[[members]]
id = 2
peer = "127.0.0.1:7102"
client = "127.0.0.1:7002"
"""

TLS = """
[tls]
ca_file = "tls/ca.crt"
cert_file = "tls/node-{id}.crt"
key_file = "/etc/pypaxos/node-{id}.key"
metrics = true
client_auth = "optional"
client_cert_file = "tls/client.crt"
client_key_file = "tls/client.key"
"""


def write(tmp_path: Path, tls: str) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text('cluster_id = "c"\n' + tls + MEMBERS)
    return path


def test_paths_are_relative_to_the_file_and_id_is_each_nodes(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, TLS))
    tls = config.tls
    assert tls is not None and config.tls_enabled
    assert tls.ca_file == tmp_path / "tls" / "ca.crt"
    files = tls.files(2)
    assert files.cert_file == tmp_path / "tls" / "node-2.crt"
    assert files.key_file == Path("/etc/pypaxos/node-2.key")  # absolute stays absolute
    assert (tls.peer, tls.client, tls.metrics) == (True, True, True)
    assert tls.client_auth == "optional"
    assert tls.client_cert_file == tmp_path / "tls" / "client.crt"


def test_no_table_means_no_tls(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.tls is None and not config.tls_enabled


def test_tls_on_peers_only_is_not_tls_enabled_for_clients(tmp_path: Path) -> None:
    text = '[tls]\nca_file = "a"\ncert_file = "b"\nkey_file = "c"\nclient = false\n'
    config = load_config(write(tmp_path, text))
    assert config.tls is not None and config.tls.peer and not config.tls_enabled


def test_render_then_load_gives_the_same_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, TLS))
    text = render_config(config)
    assert 'cert_file = "tls/node-{id}.crt"' in text  # relative to the file, as written
    assert 'key_file = "/etc/pypaxos/node-{id}.key"' in text
    (tmp_path / "cluster.toml").write_text(text)
    again = load_config(tmp_path / "cluster.toml")
    assert again.tls == config.tls and again == config


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('ca_file = "a"\ncert_file = "b"\nkey_file = "c"\ncipher = "x"\n', "tls.cipher"),
        ('cert_file = "b"\nkey_file = "c"\n', "tls.ca_file"),
        ('ca_file = "a"\ncert_file = 3\nkey_file = "c"\n', "tls.cert_file"),
        ('ca_file = "a"\ncert_file = "b"\nkey_file = "c"\npeer = "yes"\n', "tls.peer"),
        ('ca_file = "a"\ncert_file = "b"\nkey_file = "c"\nclient_auth = "on"\n', "tls.client_auth"),
        (
            'ca_file = "a"\ncert_file = "b"\nkey_file = "c"\nclient_cert_file = "d"\n',
            "tls.client_key_file",
        ),
    ],
)
def test_a_bad_tls_table_names_the_key(tmp_path: Path, table: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "[tls]\n" + table))
    assert caught.value.key == key


def test_tls_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, 'tls = "on"\n'))
    assert caught.value.key == "tls"


def test_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[tls]\nca_file = "a"\ncert_file = "b"\nkey_file = "c"\n'))
    assert config.tls == TlsConfig(tmp_path / "a", tmp_path / "b", tmp_path / "c")
    assert config.tls.client_auth == "required" and not config.tls.metrics
