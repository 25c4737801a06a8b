"""The admission webhook server: TLS with a certificate from Meshwork's CA, handlers registered by path.

A handler is a plain function ``review(request: dict) -> dict``: the AdmissionReview's ``request`` in, an
AdmissionResponse (``allowed``, ``status``, ``warnings``, ``patch``...) out; the server fills in ``uid`` and wraps
it in an AdmissionReview. ``/validate`` is :func:`validate_review`; the injection handler mounts beside it::

    AdmissionServer(issuer, {"/validate": validate_review, "/inject": inject.review})

Bounded cost for any input: a body over ``max_body`` bytes is refused before it is read whole (413), malformed
JSON or a request that is not an AdmissionReview gets a 400 with the reason, an object with more than
``MAX_NODES`` JSON values is refused without validating it, and handlers run in a worker thread, at most
``concurrency`` at a time, so the xDS server on the main loop keeps serving. A handler that raises is answered
with ``allowed: false`` and the error; the server never stops for it.

The serving certificate (DNS names of the webhook Service, and 127.0.0.1) is issued by the mesh CA at start and
reissued at half its life; new connections get the new one. The CA bundle for the webhook configurations'
``caBundle`` is :meth:`AdmissionServer.ca_bundle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import ssl
import tempfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mesh_operator.api import API_GROUP, CRD_KINDS
from mesh_operator.validation import errors, validate_document, warnings
from xds_server.ca import Issuer
from xds_server.ca.issuer import certificate_pem, random_serial
from xds_server.ca.keys import private_key_pem, signature_hash

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], dict[str, Any]]

MAX_BODY = 3 * 1024 * 1024  # an object (etcd's 1.5 MiB) and its old version
MAX_NODES = 50_000  # JSON values in one object: far above any real policy (128 rules x 32 matches x ...)
SERVING_TTL = timedelta(days=7)


def _count_nodes(obj: Any, limit: int) -> int:
    """JSON values in ``obj``, counting at most ``limit + 1`` (iterative: no recursion limit to hit)."""
    count, stack = 0, [obj]
    while stack and count <= limit:
        node = stack.pop()
        count += 1
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


def _deny(message: str, code: int = 422, reason: str = "Invalid") -> dict[str, Any]:
    return {"allowed": False, "status": {"code": code, "reason": reason, "message": message}}


def validate_review(request: dict[str, Any]) -> dict[str, Any]:
    """The same validator as ``meshctl validate``: every violation with its field path. Cross-object problems
    (a missing target, a conflict) are not refusals: they become status conditions."""
    if request.get("operation") == "DELETE":
        return {"allowed": True}
    kind = request.get("kind") or {}
    if kind.get("group") != API_GROUP or kind.get("kind") not in CRD_KINDS:
        what = f"{kind.get('group') or 'core'}/{kind.get('kind') or '?'}"
        return _deny(f"/validate admits Meshwork kinds ({', '.join(CRD_KINDS)}) only; got {what}", 400, "BadRequest")
    obj = request.get("object")
    if not isinstance(obj, dict):
        return _deny("request.object: expected the object being admitted", 400, "BadRequest")
    if _count_nodes(obj, MAX_NODES) > MAX_NODES:
        return _deny(
            f"the object has more than {MAX_NODES} JSON values; refused without validating it",
            413,
            "RequestEntityTooLarge",
        )
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    doc = {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}
    if not isinstance(doc["metadata"].get("namespace"), str) and request.get("namespace"):
        doc["metadata"]["namespace"] = request["namespace"]
    checked = validate_document(doc)
    found = errors(checked.violations)
    warned = [str(v) for v in warnings(checked.violations)]
    if checked.obj is None or found:
        name = f"{kind.get('kind')} {meta.get('name') or request.get('name') or ''}".strip()
        problems = found or checked.violations
        message = f"{name} is invalid: " + "; ".join(str(v) for v in problems)
        return {**_deny(message), "warnings": warned[:20]}
    return {"allowed": True, "warnings": warned[:20]} if warned else {"allowed": True}


class AdmissionServer:
    def __init__(
        self,
        issuer: Issuer,
        handlers: Mapping[str, Handler],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        names: tuple[str, ...] = ("localhost",),
        max_body: int = MAX_BODY,
        concurrency: int = 2,
    ) -> None:
        self.issuer = issuer
        self.handlers = dict(handlers)
        self.host, self.port, self.names = host, port, names
        self.max_body = max_body
        self._sem = asyncio.Semaphore(concurrency)
        self._runner: web.AppRunner | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._ssl: ssl.SSLContext | None = None
        self._renew: asyncio.Task[None] | None = None
        self.renew_at: datetime | None = None
        self.serial: int | None = None
        self.reviews = 0

    def ca_bundle(self) -> bytes:
        return certificate_pem(self.issuer.root)

    async def start(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="meshwork-webhook-")
        os.chmod(self._dir.name, 0o700)
        self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        self._load_cert()
        app = web.Application(client_max_size=self.max_body)
        for path in self.handlers:
            app.router.add_post(path, self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._renew = asyncio.get_running_loop().create_task(self._renew_loop())
        log.info("admission webhooks %s on https://%s:%d", sorted(self.handlers), self.host, self.port)

    async def stop(self) -> None:
        if self._renew is not None:
            self._renew.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renew
        if self._runner is not None:
            await self._runner.cleanup()
        if self._dir is not None:
            self._dir.cleanup()

    # ------------------------------------------------------------------ certificate

    def _load_cert(self) -> None:
        assert self._ssl is not None and self._dir is not None
        now = datetime.now(UTC)
        not_after = min(now + SERVING_TTL, self.issuer.not_after)
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in self.names]
        sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.names[0])]))
            .issuer_name(self.issuer.certificate.subject)
            .public_key(key.public_key())
            .serial_number(random_serial())
            .not_valid_before(now - timedelta(seconds=20))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(self.issuer.key, signature_hash(self.issuer.key))
        )
        d = Path(self._dir.name)
        chain = certificate_pem(cert, self.issuer.certificate, *self.issuer.chain[:-1])
        (d / "tls.crt").write_bytes(chain)
        key_path = d / "tls.key"
        key_path.touch(mode=0o600)
        key_path.write_bytes(private_key_pem(key))
        self._ssl.load_cert_chain(d / "tls.crt", key_path)
        key_path.unlink()
        self.serial = cert.serial_number
        self.renew_at = now + (not_after - now) / 2

    async def _renew_loop(self) -> None:
        while True:
            assert self.renew_at is not None
            wait = (self.renew_at - datetime.now(UTC)).total_seconds()
            await asyncio.sleep(max(1.0, min(wait, 300.0)))
            if datetime.now(UTC) >= self.renew_at:
                self._load_cert()
                log.info("webhook serving certificate renewed (serial %x)", self.serial)

    # ------------------------------------------------------------------ requests

    async def _serve(self, request: web.Request) -> web.Response:
        handler = self.handlers[request.path]
        if request.content_length is not None and request.content_length > self.max_body:
            return _plain(413, f"AdmissionReview over {self.max_body} bytes refused")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _plain(413, f"AdmissionReview over {self.max_body} bytes refused")
        try:
            review = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            return _plain(400, f"malformed AdmissionReview: not JSON ({e})")
        if not isinstance(review, dict) or review.get("kind") != "AdmissionReview":
            return _plain(400, "malformed AdmissionReview: expected kind AdmissionReview")
        req = review.get("request")
        if not isinstance(req, dict) or not isinstance(req.get("uid"), str):
            return _plain(400, "malformed AdmissionReview: request.uid is missing")
        self.reviews += 1
        async with self._sem:
            try:
                response = await asyncio.to_thread(handler, req)
            except Exception as e:  # a handler bug must never take the server down
                log.exception("admission handler %s failed", request.path)
                response = _deny(f"{request.path} failed: {type(e).__name__}: {e}", 500, "InternalError")
        body = {
            "apiVersion": review.get("apiVersion") or "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {**response, "uid": req["uid"]},
        }
        return web.json_response(body)


def _plain(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
