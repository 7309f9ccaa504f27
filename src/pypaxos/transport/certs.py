"""A development certificate authority and the certificates a cluster's TLS needs.

``issue_cluster(directory, nodes)`` writes, in ``directory``:

- ``ca.crt`` and ``ca.key``: a self-signed CA (made once; later calls sign with it, so
  renewing a node's certificate keeps every other certificate valid);
- ``node-N.crt`` and ``node-N.key`` per member: the certificate names the member with the URI
  ``pypaxos:node:N`` (what peers check, see ``transport.tls``) and carries DNS or IP names for
  the member's hosts, with extended key usages serverAuth and clientAuth, so one certificate
  serves the node's ports and dials its peers;
- ``client.crt`` and ``client.key``: a certificate for tools and applications that connect to
  the client port when it requires client certificates (URI ``pypaxos:client:NAME``).

Keys are ECDSA P-256 (FIPS 186-4; small and fast to handshake), signatures SHA-256.  Private
keys are created owner-only (mode 0600) and every file is written to a temporary name, fsynced
and renamed, so a node reloading its certificate (SIGHUP) never reads half a file.  This is a
development CA: production clusters should use their own PKI and only the file layout.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pypaxos.transport.tls import CLIENT_URI_PREFIX, node_uri

CA_CERT_NAME = "ca.crt"
CA_KEY_NAME = "ca.key"
CLIENT_NAME = "client"
CA_DAYS = 3650
CERT_DAYS = 365
CLOCK_SKEW_S = 300  # certificates are valid from a little before "now", for skewed clocks

Key = ec.EllipticCurvePrivateKey


class CertError(Exception):
    """Certificates that cannot be made: an unreadable CA, or files that exist already."""


@dataclass(frozen=True, slots=True)
class NodeCert:
    """Where node ``node_id``'s certificate and key are, and the hosts it names."""

    node_id: int
    cert_file: Path
    key_file: Path


def node_cert_name(node_id: int) -> str:
    return f"node-{node_id}.crt"


def node_key_name(node_id: int) -> str:
    return f"node-{node_id}.key"


def _new_key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pypaxos"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _validity(days: int) -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(seconds=CLOCK_SKEW_S), now + datetime.timedelta(days=days)


def _host_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):  # unique, in order
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def new_ca(days: int = CA_DAYS) -> tuple[x509.Certificate, Key]:
    key = _new_key()
    start, end = _validity(days)
    name = _name("pypaxos development CA")
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def issue(
    ca: tuple[x509.Certificate, Key],
    common_name: str,
    uri: str,
    hosts: Sequence[str],
    days: int = CERT_DAYS,
) -> tuple[x509.Certificate, Key]:
    """A leaf certificate signed by ``ca`` naming ``uri`` and ``hosts``, for both ends."""
    ca_cert, ca_key = ca
    key = _new_key()
    start, end = _validity(days)
    public = key.public_key()
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri), *_host_names(hosts)]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return certificate, key


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically, the new file created with ``mode``."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)


def _write_pair(
    directory: Path, cert_name: str, key_name: str, pair: tuple[x509.Certificate, Key]
) -> None:
    certificate, key = pair
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # The key first: a reader that sees the new certificate must find its key.
    _write(directory / key_name, key_pem, 0o600)
    _write(directory / cert_name, certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def load_or_create_ca(directory: Path, days: int = CA_DAYS) -> tuple[x509.Certificate, Key]:
    """The CA in ``directory``, made (and written) first if there is none."""
    cert_path, key_path = directory / CA_CERT_NAME, directory / CA_KEY_NAME
    if cert_path.exists() != key_path.exists():
        raise CertError(f"{directory} has only one of {CA_CERT_NAME} and {CA_KEY_NAME}")
    if cert_path.exists():
        try:
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError) as error:
            raise CertError(f"cannot read the CA in {directory}: {error}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertError(f"{key_path} is not an ECDSA key")
        return certificate, key
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca = new_ca(days)
    _write_pair(directory, CA_CERT_NAME, CA_KEY_NAME, ca)
    return ca


def issue_cluster(
    directory: Path,
    nodes: Sequence[tuple[int, Sequence[str]]],
    *,
    days: int = CERT_DAYS,
    renew: bool = False,
    client: bool = True,
) -> list[NodeCert]:
    """Certificates for each ``(node_id, hosts)`` (and a client certificate) in ``directory``.

    Existing node or client files are refused unless ``renew``, which replaces them (signed by
    the same CA) for a node to pick up on SIGHUP.
    """
    names = [(node_cert_name(i), node_key_name(i)) for i, _ in nodes]
    if client:
        names.append((f"{CLIENT_NAME}.crt", f"{CLIENT_NAME}.key"))
    existing = [n for pair in names for n in pair if (directory / n).exists()]
    if existing and not renew:
        raise CertError(f"{directory} already has {', '.join(existing)} (renew to replace)")
    ca = load_or_create_ca(directory)
    made: list[NodeCert] = []
    for node_id, hosts in nodes:
        pair = issue(ca, f"pypaxos node {node_id}", node_uri(node_id), hosts, days)
        cert_name, key_name = node_cert_name(node_id), node_key_name(node_id)
        _write_pair(directory, cert_name, key_name, pair)
        made.append(NodeCert(node_id, directory / cert_name, directory / key_name))
    if client:
        uri = f"{CLIENT_URI_PREFIX}{CLIENT_NAME}"
        pair = issue(ca, "pypaxos client", uri, ["localhost"], days)
        _write_pair(directory, f"{CLIENT_NAME}.crt", f"{CLIENT_NAME}.key", pair)
    _sync_directory(directory)
    return made


__all__ = [
    "CA_CERT_NAME",
    "CA_KEY_NAME",
    "CLIENT_NAME",
    "CertError",
    "NodeCert",
    "issue",
    "issue_cluster",
    "load_or_create_ca",
    "new_ca",
    "node_cert_name",
    "node_key_name",
]
