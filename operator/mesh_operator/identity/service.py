"""The control plane's side of pod identity: token + CSR in, the workload certificate out (or a refusal).

:class:`IdentityService` does the checks (:mod:`.decide`) against the API server through a :class:`KubeReader`
and signs with the mesh CA; :func:`routes` mounts it on the control plane's aiohttp server::

    POST /identity/v1/certificate
    {"token": "<projected SA token>", "csr": "<PEM>", "namespace": "shop", "pod": "web-0"}
    200 {"identity": "spiffe://...", "certificateChain": "<PEM>", "trustBundle": "<PEM>", "notAfter": "..."}
    403 {"reason": "..."}          400 {"reason": "..."} (malformed request or CSR)

Nothing is signed unless every check passed; a refusal never says more than the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from aiohttp import web

from mesh_operator.identity.decide import PodIdentity, Refusal, check_pod, identity_from_review
from xds_server.ca import Issuer, SpiffeId
from xds_server.errors import CertificateError

log = logging.getLogger(__name__)

PATH = "/identity/v1/certificate"
MAX_FIELD = 64 * 1024


class KubeReader(Protocol):
    async def token_review(self, token: str, audiences: list[str]) -> Mapping[str, Any]: ...
    async def get_pod(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...


class KubernetesReader:
    """:class:`KubeReader` on the ``kubernetes`` client (its calls run in a thread)."""

    def __init__(self, api_client: Any) -> None:
        self.api = api_client

    async def token_review(self, token: str, audiences: list[str]) -> Mapping[str, Any]:
        from kubernetes import client

        def call() -> Mapping[str, Any]:
            body = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token, audiences=audiences))
            review = client.AuthenticationV1Api(self.api).create_token_review(body)
            status: Mapping[str, Any] = self.api.sanitize_for_serialization(review.status) or {}
            return status

        return await asyncio.to_thread(call)

    async def get_pod(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        from kubernetes import client

        def call() -> Mapping[str, Any] | None:
            try:
                pod = client.CoreV1Api(self.api).read_namespaced_pod(name, namespace)
            except client.ApiException as err:
                if err.status == 404:
                    return None
                raise
            out: Mapping[str, Any] = self.api.sanitize_for_serialization(pod)
            return out

        return await asyncio.to_thread(call)


@dataclass(frozen=True, slots=True)
class Granted:
    identity: PodIdentity
    spiffe_id: str
    chain_pem: bytes
    trust_bundle_pem: bytes
    not_after: str


class IdentityService:
    def __init__(
        self,
        kube: KubeReader,
        issuer: Callable[[], Issuer],
        trust_bundle_pem: Callable[[], bytes],
        *,
        trust_domain: str = "cluster.local",
        audience: str = "meshwork",
        ttl: timedelta | None = None,
    ) -> None:
        self.kube = kube
        self.issuer = issuer
        self.trust_bundle_pem = trust_bundle_pem
        self.trust_domain = trust_domain
        self.audience = audience
        self.ttl = ttl

    async def certify(self, token: str, csr_pem: str, namespace: str, pod: str) -> Granted | Refusal:
        status = await self.kube.token_review(token, [self.audience])
        identity = identity_from_review(status, self.audience)
        if isinstance(identity, Refusal):
            return identity
        refusal = check_pod(identity, await self.kube.get_pod(identity.namespace, identity.pod_name), namespace, pod)
        if refusal is not None:
            return refusal
        spiffe = identity.spiffe_id(self.trust_domain)
        try:
            issued = self.issuer().sign_csr(csr_pem, SpiffeId.parse(spiffe), ttl=self.ttl)
        except CertificateError as err:
            return Refusal(f"the CSR cannot be signed for {spiffe}: {err}")
        log.info("signed %s for pod %s/%s", spiffe, identity.namespace, identity.pod_name)
        return Granted(identity, spiffe, issued.chain_pem, self.trust_bundle_pem(), issued.not_after.isoformat())

    async def handle(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"reason": "the body must be JSON"}, status=400)
        fields = {}
        for key in ("token", "csr", "namespace", "pod"):
            value = body.get(key) if isinstance(body, dict) else None
            if not isinstance(value, str) or not value or len(value) > MAX_FIELD:
                return web.json_response({"reason": f"{key}: a non-empty string is required"}, status=400)
            fields[key] = value
        result = await self.certify(fields["token"], fields["csr"], fields["namespace"], fields["pod"])
        if isinstance(result, Refusal):
            log.warning("refused a certificate for pod %s/%s: %s", fields["namespace"], fields["pod"], result.reason)
            status = 400 if result.reason.startswith("the CSR") else 403
            return web.json_response({"reason": result.reason}, status=status)
        return web.json_response(
            {
                "identity": result.spiffe_id,
                "certificateChain": result.chain_pem.decode(),
                "trustBundle": result.trust_bundle_pem.decode(),
                "notAfter": result.not_after,
            }
        )


def routes(service: IdentityService) -> list[web.RouteDef]:
    """The route(s) to add to the control plane's aiohttp application."""
    return [web.post(PATH, service.handle)]
