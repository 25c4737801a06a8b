"""Asking the control plane for the certificate: standard-library HTTPS; the server must chain to the mesh's
trust bundle and present the control plane's exact SPIFFE ID (its certificate names no DNS host)."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class Refused(RuntimeError):
    """The control plane refused: ``status`` and its ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"the control plane refused the certificate ({status}): {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Certificate:
    identity: str
    chain_pem: str
    trust_bundle_pem: str
    not_after: str


def _uri_sans(cert: Mapping[str, Any]) -> list[str]:
    sans = cert.get("subjectAltName") or ()
    return [str(v) for k, v in sans if k == "URI"] if isinstance(sans, tuple) else []


def request_certificate(
    url: str,
    ca_path: Path,
    token: str,
    csr_pem: str,
    namespace: str,
    pod: str,
    server_id: str,
    timeout: float = 15.0,
) -> Certificate:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"MESHWORK_IDENTITY_URL={url!r} must be an https:// URL")
    ctx = ssl.create_default_context(cafile=str(ca_path))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # checked below, against the SPIFFE ID (verify_mode stays CERT_REQUIRED)
    conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=timeout, context=ctx)
    try:
        conn.connect()
        peer = conn.sock.getpeercert() if isinstance(conn.sock, ssl.SSLSocket) else None
        if not peer or server_id not in _uri_sans(peer):
            raise ssl.SSLError(f"the server is not {server_id} (it presented {_uri_sans(peer or {})})")
        body = json.dumps({"token": token, "csr": csr_pem, "namespace": namespace, "pod": pod})
        conn.request("POST", parts.path or "/", body=body, headers={"content-type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        data = json.loads(raw)
    except ValueError:
        data = {}
    if resp.status != 200:
        raise Refused(resp.status, str(data.get("reason") or resp.reason))
    return Certificate(data["identity"], data["certificateChain"], data["trustBundle"], data["notAfter"])
