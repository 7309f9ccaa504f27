"""The development CA: each node certificate names its member id and hosts, verifies against
the CA for both ends, and its key is readable by its owner only."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from pypaxos.transport.certs import CertError, issue_cluster
from pypaxos.transport.tls import TlsError, TlsFiles, server_context


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_each_node_certificate_names_its_id_and_hosts(tmp_path: Path) -> None:
    made = issue_cluster(tmp_path, [(1, ["127.0.0.1", "node1.example"]), (7, ["::1"])])
    assert [m.node_id for m in made] == [1, 7]
    names = _cert(tmp_path / "node-1.crt").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert names.value.get_values_for_type(x509.UniformResourceIdentifier) == ["pypaxos:node:1"]
    assert names.value.get_values_for_type(x509.DNSName) == ["node1.example"]
    assert names.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    seven = _cert(tmp_path / "node-7.crt").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert seven.value.get_values_for_type(x509.UniformResourceIdentifier) == ["pypaxos:node:7"]
    usages = _cert(tmp_path / "node-1.crt").extensions.get_extension_for_class(
        x509.ExtendedKeyUsage
    )
    assert set(usages.value) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert _cert(tmp_path / "node-1.crt").issuer == _cert(tmp_path / "ca.crt").subject


def test_private_keys_are_owner_only(tmp_path: Path) -> None:
    issue_cluster(tmp_path, [(1, ["127.0.0.1"]), (2, ["127.0.0.1"])])
    for name in ("ca.key", "node-1.key", "node-2.key", "client.key"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    assert not list(tmp_path.glob("*.tmp"))


def test_the_files_load_into_a_verifying_context(tmp_path: Path) -> None:
    issue_cluster(tmp_path, [(1, ["127.0.0.1"])])
    files = TlsFiles(tmp_path / "ca.crt", tmp_path / "node-1.crt", tmp_path / "node-1.key")
    context = server_context(files)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_a_mismatched_key_is_a_tls_error_naming_the_files(tmp_path: Path) -> None:
    issue_cluster(tmp_path, [(1, ["127.0.0.1"]), (2, ["127.0.0.1"])])
    files = TlsFiles(tmp_path / "ca.crt", tmp_path / "node-1.crt", tmp_path / "node-2.key")
    with pytest.raises(TlsError) as caught:
        server_context(files)
    assert "node-1.crt" in str(caught.value) and "node-2.key" in str(caught.value)


def test_existing_certificates_are_kept_unless_renewed_with_the_same_ca(tmp_path: Path) -> None:
    issue_cluster(tmp_path, [(1, ["127.0.0.1"])])
    ca_before = (tmp_path / "ca.crt").read_bytes()
    old = _cert(tmp_path / "node-1.crt").serial_number
    with pytest.raises(CertError) as caught:
        issue_cluster(tmp_path, [(1, ["127.0.0.1"])])
    assert "node-1.crt" in str(caught.value)
    assert _cert(tmp_path / "node-1.crt").serial_number == old
    issue_cluster(tmp_path, [(1, ["127.0.0.1"])], renew=True)
    assert _cert(tmp_path / "node-1.crt").serial_number != old
    assert (tmp_path / "ca.crt").read_bytes() == ca_before


def test_a_key_that_others_may_read_is_refused(tmp_path: Path) -> None:
    issue_cluster(tmp_path, [(1, ["127.0.0.1"])])
    files = TlsFiles(tmp_path / "ca.crt", tmp_path / "node-1.crt", tmp_path / "node-1.key")
    (tmp_path / "node-1.key").chmod(0o640)  # a group may: Debian's ssl-cert convention
    server_context(files)
    (tmp_path / "node-1.key").chmod(0o644)
    with pytest.raises(TlsError) as caught:
        server_context(files)
    assert "node-1.key" in str(caught.value) and "644" in str(caught.value)
