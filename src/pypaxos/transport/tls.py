"""TLS contexts for the peer port and the client port, and the member id a certificate names.

A cluster's certificates come from one certificate authority (``transport.certs`` makes a
development one).  A node certificate names its member with a URI subject alternative name,
``pypaxos:node:N`` (RFC 5280 section 4.2.1.6), and may be used both to serve and to dial
(extended key usages serverAuth and clientAuth), so one certificate and key per node serves
the peer port in both directions.

Peers use mutual TLS (RFC 8446; TLS 1.2 at least, 1.3 preferred): both ends must show a
certificate signed by the cluster's CA, and the name that counts is the node id, not the
host: ``TcpTransport`` checks that an accepted connection's certificate names the node its
``Hello`` claims, and that the node it dialled shows a certificate naming the node it meant to
reach.  Host names are not checked between peers (``check_hostname`` off): an address can
change or sit behind a NAT, while the node id is what the protocol trusts.

A private key that anyone may read is refused (``TlsError``), as ssh refuses such a key.

Certificates are reloaded in place: ``TlsContexts.reload`` reads the files again into a fresh
context first (so a bad or mismatched file changes nothing), then loads them into the live
contexts, which every later handshake uses; open connections keep the certificate they were
made with.  Loading a CA file adds its certificates to those already trusted; to stop trusting
an old CA, restart the node.
"""

from __future__ import annotations

import ssl
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

NODE_URI_PREFIX = "pypaxos:node:"
CLIENT_URI_PREFIX = "pypaxos:client:"

ClientAuth = Literal["required", "optional", "none"]
CLIENT_AUTH_MODES: tuple[ClientAuth, ...] = ("required", "optional", "none")
_VERIFY: Mapping[ClientAuth, ssl.VerifyMode] = {
    "required": ssl.CERT_REQUIRED,
    "optional": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE,
}


class TlsError(Exception):
    """A certificate, key or CA file that cannot be loaded; the message names the files."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """One party's PEM files: the CA it trusts, its certificate (chain) and its key."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def node_uri(node_id: int) -> str:
    return f"{NODE_URI_PREFIX}{node_id}"


def node_ids_named(peercert: Mapping[str, object] | None) -> frozenset[int]:
    """The node ids in a verified certificate's ``pypaxos:node:N`` URIs.

    ``peercert`` is what ``SSLSocket.getpeercert()`` (or a transport's ``peercert`` extra)
    returns: empty for an unverified or absent certificate, which names no node.
    """
    if not peercert:
        return frozenset()
    names = peercert.get("subjectAltName", ())
    found: set[int] = set()
    if not isinstance(names, tuple):
        return frozenset()
    for entry in names:
        if not (isinstance(entry, tuple) and len(entry) == 2 and entry[0] == "URI"):
            continue
        value = entry[1]
        if isinstance(value, str) and value.startswith(NODE_URI_PREFIX):
            digits = value[len(NODE_URI_PREFIX) :]
            if digits.isdigit() and digits.isascii():
                found.add(int(digits))
    return frozenset(found)


def _base(purpose: int) -> ssl.SSLContext:
    context = ssl.SSLContext(purpose)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # 1.3 is negotiated whenever both can
    context.options |= ssl.OP_NO_COMPRESSION  # CRIME; and RESP needs none
    return context


def _check_private(key_file: Path) -> None:
    """Refuse a key that anyone may read.  Group access is allowed: Debian's convention is a
    0640 key owned by the ``ssl-cert`` group, and the group is chosen by its owner."""
    try:
        mode = key_file.stat().st_mode
    except OSError:
        return  # loading it says what is wrong
    if mode & stat.S_IRWXO:
        raise TlsError(
            f"{key_file} is readable by others (mode {stat.S_IMODE(mode):o}): chmod 600 or 640"
        )


def _load(context: ssl.SSLContext, files: TlsFiles, *, chain: bool = True) -> None:
    if chain:
        _check_private(files.key_file)
    try:
        context.load_verify_locations(cafile=str(files.ca_file))
        if chain:
            context.load_cert_chain(str(files.cert_file), str(files.key_file))
    except (OSError, ssl.SSLError, ValueError) as error:
        detail = getattr(error, "strerror", None) or getattr(error, "reason", None) or error
        raise TlsError(
            f"cannot load the TLS files (CA {files.ca_file}, certificate {files.cert_file}, "
            f"key {files.key_file}): {detail}"
        ) from None


def server_context(files: TlsFiles, client_auth: ClientAuth = "required") -> ssl.SSLContext:
    """A listening context with ``files``' certificate; clients are verified against the CA
    as ``client_auth`` says."""
    context = _base(ssl.PROTOCOL_TLS_SERVER)
    context.verify_mode = _VERIFY[client_auth]
    _load(context, files)
    return context


def client_context(
    ca_file: Path,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    *,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A dialling context that trusts ``ca_file`` and shows ``cert_file`` if given."""
    context = _base(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = check_hostname
    files = TlsFiles(ca_file, cert_file or ca_file, key_file or ca_file)
    _load(context, files, chain=cert_file is not None)
    return context


class TlsContexts:
    """A node's live contexts built from ``files``: ``server`` for a port it listens on,
    ``peer_client`` for dialling peers; ``reload`` swaps in the files' current contents."""

    def __init__(self, files: TlsFiles, client_auth: ClientAuth = "required") -> None:
        self.files = files
        self.client_auth = client_auth
        self.peer_server = server_context(files, "required")
        self.server = server_context(files, client_auth)
        self.peer_client = client_context(
            files.ca_file, files.cert_file, files.key_file, check_hostname=False
        )
        self.reloads = 0

    def contexts(self) -> Iterable[ssl.SSLContext]:
        return (self.peer_server, self.server, self.peer_client)

    def reload(self) -> None:
        """Read the files again; ``TlsError`` (and nothing changed) if they do not load."""
        server_context(self.files, self.client_auth)  # check first: all or nothing
        for context in self.contexts():
            _load(context, self.files)
        self.reloads += 1


__all__ = [
    "CLIENT_AUTH_MODES",
    "CLIENT_URI_PREFIX",
    "NODE_URI_PREFIX",
    "ClientAuth",
    "TlsContexts",
    "TlsError",
    "TlsFiles",
    "client_context",
    "node_ids_named",
    "node_uri",
    "server_context",
]
