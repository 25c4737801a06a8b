"""Pod identity against a real kube-apiserver: the agent's certificate request and every refusal.

The control plane's identity service runs on 127.0.0.1 over HTTPS (a certificate of the control plane's SPIFFE ID
from the mesh CA) and checks tokens with real TokenReviews; tokens are real TokenRequests bound to real (stored,
Pending) pods, or, for expiry, a token signed with the API server's own service-account key that expired an hour
ago. The agent side is the agent's own code (key and CSR in a child process, stdlib HTTPS).
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from kubernetes import client

from mesh_operator.agent.client import Refused
from mesh_operator.agent.config import AgentConfig
from mesh_operator.agent.run import Agent
from mesh_operator.identity import IdentityService, KubernetesReader, routes
from mesh_operator.testing import TestControlPlane
from xds_server.ca import Issuer, SpiffeId, TrustBundle, create_root
from xds_server.ports import free_port

CONTROL_PLANE_ID = "spiffe://cluster.local/ns/meshwork-system/sa/meshwork-control-plane"


@dataclass
class Served:
    url: str
    ca_pem: Path
    signed: list[str]


@pytest.fixture
async def identity_service(k8s_api_client: client.ApiClient, tmp_path: Path) -> AsyncIterator[Served]:
    ca = create_root("cluster.local")
    signed: list[str] = []

    def issuer() -> Issuer:  # called only when every check passed, right before signing
        signed.append("sign")
        return ca

    service = IdentityService(KubernetesReader(k8s_api_client), issuer, lambda: TrustBundle.of(ca.root).to_pem())
    app = web.Application()
    app.add_routes(routes(service))
    server_cert = ca.issue_keypair(SpiffeId.parse(CONTROL_PLANE_ID))
    (tmp_path / "server.pem").write_bytes(server_cert.chain_pem)
    (tmp_path / "server.key").write_bytes(server_cert.private_key_pem)
    (tmp_path / "ca.pem").write_bytes(TrustBundle.of(ca.root).to_pem())
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx)
    await site.start()
    try:
        yield Served(f"https://127.0.0.1:{port}/identity/v1/certificate", tmp_path / "ca.pem", signed)
    finally:
        await runner.cleanup()


def make_pod(api: client.ApiClient, namespace: str, name: str, account: str) -> str:
    core = client.CoreV1Api(api)
    try:
        core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata={"name": account}))
    except client.ApiException as err:
        if err.status != 409:
            raise
    pod = core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1PodSpec(
                service_account_name=account,
                containers=[client.V1Container(name="app", image="localhost/app:1")],
            ),
        ),
    )
    return str(pod.metadata.uid)


def pod_token(api: client.ApiClient, namespace: str, account: str, pod: str | None, audience: str = "meshwork") -> str:
    ref = None
    if pod is not None:
        uid = client.CoreV1Api(api).read_namespaced_pod(pod, namespace).metadata.uid
        ref = client.V1BoundObjectReference(kind="Pod", api_version="v1", name=pod, uid=uid)
    spec = client.V1TokenRequestSpec(audiences=[audience], expiration_seconds=600, bound_object_ref=ref)
    out = client.CoreV1Api(api).create_namespaced_service_account_token(
        account, namespace, client.AuthenticationV1TokenRequest(spec=spec)
    )
    return str(out.status.token)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def expired_token(plane: TestControlPlane, namespace: str, account: str, pod: str, pod_uid: str, sa_uid: str) -> str:
    """A token the API server itself could have issued (its signing key, its issuer), expired an hour ago."""
    key = serialization.load_pem_private_key(plane.pki.sa_key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    now = int(time.time())
    claims = {
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": f"system:serviceaccount:{namespace}:{account}",
        "aud": ["meshwork"],
        "iat": now - 4200,
        "nbf": now - 4200,
        "exp": now - 3600,
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": {"name": account, "uid": sa_uid},
            "pod": {"name": pod, "uid": pod_uid},
        },
    }
    signing_input = f"{_b64(json.dumps({'alg': 'RS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def agent_for(served: Served, tmp_path: Path, namespace: str, pod: str, account: str, token: str) -> Agent:
    token_path = tmp_path / f"token-{uuid.uuid4().hex[:6]}"
    token_path.write_text(token)
    return Agent(
        AgentConfig(
            pod_name=pod,
            namespace=namespace,
            service_account=account,
            control_plane="127.0.0.1:15012",
            identity_url=served.url,
            token_path=token_path,
            ca_path=served.ca_pem,
            work_dir=tmp_path / f"work-{uuid.uuid4().hex[:6]}",
            control_plane_id=CONTROL_PLANE_ID,
        )
    )


async def obtain(agent: Agent) -> Any:
    return await asyncio.to_thread(agent.obtain)


async def refused(agent: Agent) -> Refused:
    with pytest.raises(Refused) as info:
        await obtain(agent)
    return info.value


async def test_the_agent_gets_a_certificate_of_its_pods_service_account(
    k8s_api_client: client.ApiClient, namespace: str, identity_service: Served, tmp_path: Path
) -> None:
    make_pod(k8s_api_client, namespace, "web-0", "web")
    agent = agent_for(
        identity_service, tmp_path, namespace, "web-0", "web", pod_token(k8s_api_client, namespace, "web", "web-0")
    )
    cert = await obtain(agent)
    expected = f"spiffe://cluster.local/ns/{namespace}/sa/web"
    assert cert.identity == expected
    creds = agent.cfg.creds_dir
    leaf = x509.load_pem_x509_certificate((creds / "cert.pem").read_bytes())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [expected]
    key = serialization.load_pem_private_key((creds / "key.pem").read_bytes(), password=None)
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()  # type: ignore[union-attr]
    assert (creds / "key.pem").stat().st_mode & 0o777 == 0o600
    assert identity_service.signed == ["sign"]


async def test_a_token_of_another_pod_is_refused(
    k8s_api_client: client.ApiClient, namespace: str, identity_service: Served, tmp_path: Path
) -> None:
    make_pod(k8s_api_client, namespace, "web-0", "web")
    make_pod(k8s_api_client, namespace, "web-1", "web")
    other = pod_token(k8s_api_client, namespace, "web", "web-1")
    err = await refused(agent_for(identity_service, tmp_path, namespace, "web-0", "web", other))
    assert err.status == 403
    assert f"belongs to pod {namespace}/web-1, not {namespace}/web-0" in err.reason
    assert identity_service.signed == []


async def test_an_expired_token_is_refused(
    k8s_control_plane: TestControlPlane,
    k8s_api_client: client.ApiClient,
    namespace: str,
    identity_service: Served,
    tmp_path: Path,
) -> None:
    pod_uid = make_pod(k8s_api_client, namespace, "web-0", "web")
    sa_uid = client.CoreV1Api(k8s_api_client).read_namespaced_service_account("web", namespace).metadata.uid
    token = expired_token(k8s_control_plane, namespace, "web", "web-0", pod_uid, sa_uid)
    err = await refused(agent_for(identity_service, tmp_path, namespace, "web-0", "web", token))
    assert err.status == 403
    assert "did not accept the token" in err.reason
    assert identity_service.signed == []


async def test_a_token_for_another_audience_is_refused(
    k8s_api_client: client.ApiClient, namespace: str, identity_service: Served, tmp_path: Path
) -> None:
    make_pod(k8s_api_client, namespace, "web-0", "web")
    token = pod_token(k8s_api_client, namespace, "web", "web-0", audience="https://kubernetes.default.svc")
    err = await refused(agent_for(identity_service, tmp_path, namespace, "web-0", "web", token))
    assert err.status == 403
    assert "did not accept the token" in err.reason
    assert identity_service.signed == []


async def test_a_token_of_a_pod_that_no_longer_exists_is_refused(
    k8s_api_client: client.ApiClient, namespace: str, identity_service: Served, tmp_path: Path
) -> None:
    make_pod(k8s_api_client, namespace, "web-0", "web")
    token = pod_token(k8s_api_client, namespace, "web", "web-0")
    client.CoreV1Api(k8s_api_client).delete_namespaced_pod("web-0", namespace, grace_period_seconds=0)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # no kubelet: the pod is gone once the API server says 404
        try:
            client.CoreV1Api(k8s_api_client).read_namespaced_pod("web-0", namespace)
        except client.ApiException as e:
            if e.status == 404:
                break
        await asyncio.sleep(0.2)
    err = await refused(agent_for(identity_service, tmp_path, namespace, "web-0", "web", token))
    assert err.status == 403
    # The API server itself invalidates a token whose bound pod is gone (our own Pod check is the second line).
    assert "token has been invalidated" in err.reason
    assert identity_service.signed == []


async def test_a_token_not_bound_to_a_pod_is_refused(
    k8s_api_client: client.ApiClient, namespace: str, identity_service: Served, tmp_path: Path
) -> None:
    make_pod(k8s_api_client, namespace, "web-0", "web")
    token = pod_token(k8s_api_client, namespace, "web", None)
    err = await refused(agent_for(identity_service, tmp_path, namespace, "web-0", "web", token))
    assert err.status == 403
    assert "not bound to a pod" in err.reason
    assert identity_service.signed == []


async def test_a_csr_for_another_identity_is_refused(
    k8s_api_client: client.ApiClient, namespace: str, identity_service: Served, tmp_path: Path
) -> None:
    make_pod(k8s_api_client, namespace, "web-0", "web")
    # The agent believes it is "admin"; the token says "web": the CSR does not match the verified identity.
    token = pod_token(k8s_api_client, namespace, "web", "web-0")
    err = await refused(agent_for(identity_service, tmp_path, namespace, "web-0", "admin", token))
    assert err.status == 400
    assert f"spiffe://cluster.local/ns/{namespace}/sa/web" in err.reason
