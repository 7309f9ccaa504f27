"""The ``[tls]`` table of ``cluster.toml``: which ports speak TLS and with which files.

``runtime.config`` owns the file; this module owns the one table, so the loader stays short::

    [tls]
    ca_file = "tls/ca.crt"             # the cluster's CA: peers and clients are checked against it
    cert_file = "tls/node-{id}.crt"    # "{id}" is each node's own id
    key_file = "tls/node-{id}.key"
    peer = true                        # mutual TLS between nodes (default true)
    client = true                      # TLS on the client (RESP) port (default true)
    metrics = false                    # TLS on the metrics endpoint (default false)
    client_auth = "required"           # client certificates: "required", "optional", "none"
    client_cert_file = "tls/client.crt"  # what pypaxos's own tools show the client port
    client_key_file = "tls/client.key"

Paths are relative to the file.  ``client_auth`` applies to the client port and the metrics
endpoint (peers always need a node certificate), with Redis's ``tls-auth-clients`` meanings.
A node loads its files when it starts (a bad file is a configuration error, exit 2) and again
on SIGHUP (``transport.tls.TlsContexts.reload``).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pypaxos.transport.tls import (
    CLIENT_AUTH_MODES,
    ClientAuth,
    TlsContexts,
    TlsFiles,
    client_context,
)

NODE_ID_FIELD = "{id}"
PATH_KEYS = ("ca_file", "cert_file", "key_file", "client_cert_file", "client_key_file")
SWITCH_KEYS = ("peer", "client", "metrics")
TLS_KEYS = (*PATH_KEYS, *SWITCH_KEYS, "client_auth")


class TlsConfigError(Exception):
    """A bad ``[tls]`` value; ``key`` is the key inside the table."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """The ``[tls]`` table with absolute paths (``{id}`` still in place)."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    peer: bool = True
    client: bool = True
    metrics: bool = False
    client_auth: ClientAuth = "required"
    client_cert_file: Path | None = None
    client_key_file: Path | None = None

    def files(self, node_id: int) -> TlsFiles:
        """Node ``node_id``'s CA, certificate and key."""

        def own(path: Path) -> Path:
            return Path(str(path).replace(NODE_ID_FIELD, str(node_id)))

        return TlsFiles(self.ca_file, own(self.cert_file), own(self.key_file))

    def contexts(self, node_id: int) -> TlsContexts:
        """Node ``node_id``'s live contexts; ``transport.tls.TlsError`` if a file is unusable."""
        return TlsContexts(self.files(node_id), self.client_auth)

    def client_context(self) -> ssl.SSLContext:
        """What a tool dials the client port with: the CA, and the client certificate if any."""
        return client_context(self.ca_file, self.client_cert_file, self.client_key_file)


def parse_tls(table: Any, resolve: Callable[[str], Path]) -> TlsConfig:
    """Check the ``[tls]`` table; ``resolve`` makes a path in the file absolute."""
    if not isinstance(table, dict):
        raise TlsConfigError("", "must be a table")
    for key in table:
        if key not in TLS_KEYS:
            raise TlsConfigError(key, f"unknown key (allowed: {', '.join(TLS_KEYS)})")
    paths: dict[str, Path | None] = {}
    for key in PATH_KEYS:
        value = table.get(key)
        required = key in ("ca_file", "cert_file", "key_file")
        if value is None:
            if required:
                raise TlsConfigError(key, "missing (a file path is required)")
            paths[key] = None
            continue
        if not isinstance(value, str) or not value:
            raise TlsConfigError(key, f"must be a non-empty string, got {value!r}")
        paths[key] = resolve(value)
    if (paths["client_cert_file"] is None) != (paths["client_key_file"] is None):
        raise TlsConfigError("client_key_file", "client_cert_file and client_key_file go together")
    switches: dict[str, bool] = {}
    for key, default in zip(SWITCH_KEYS, (True, True, False), strict=True):
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise TlsConfigError(key, f"must be true or false, got {value!r}")
        switches[key] = value
    client_auth = table.get("client_auth", "required")
    if client_auth not in CLIENT_AUTH_MODES:
        allowed = ", ".join(f'"{mode}"' for mode in CLIENT_AUTH_MODES)
        raise TlsConfigError("client_auth", f"must be one of {allowed}, got {client_auth!r}")
    ca_file, cert_file, key_file = paths["ca_file"], paths["cert_file"], paths["key_file"]
    assert ca_file is not None and cert_file is not None and key_file is not None
    return TlsConfig(
        ca_file,
        cert_file,
        key_file,
        peer=switches["peer"],
        client=switches["client"],
        metrics=switches["metrics"],
        client_auth=client_auth,
        client_cert_file=paths["client_cert_file"],
        client_key_file=paths["client_key_file"],
    )


def render_tls(
    tls: TlsConfig, relative: Callable[[Path], str], quote: Callable[[str], str]
) -> list[str]:
    """The ``[tls]`` table's lines; defaults are written too, so the file says what it does."""
    lines = ["[tls]"]
    for key in PATH_KEYS:
        value = getattr(tls, key)
        if value is not None:
            lines.append(f"{key} = {quote(relative(value))}")
    for key in SWITCH_KEYS:
        lines.append(f"{key} = {'true' if getattr(tls, key) else 'false'}")
    lines.append(f"client_auth = {quote(tls.client_auth)}")
    return lines


__all__ = ["TLS_KEYS", "TlsConfig", "TlsConfigError", "parse_tls", "render_tls"]
