"""A mesh on a real kube-apiserver for tests: Kubernetes objects in the API, real Envoy sidecars on 127.0.0.1.

A bare apiserver has no kubelet, so this plays the kubelet's part for each pod: it stores the Pod (annotated as
injected, with its sidecar's ports), sets the Pod's IP to 127.0.0.1 through the status subresource, writes the
Service's EndpointSlice, and starts the pod's sidecar as a local Envoy process that connects to the operator
with **the identity of the pod it stands for** (a client certificate for the pod's service account, from the
operator's CA), plus the pod's application (``examples/apps/echo.py``) for the pods that serve.

The operator runs as a child process (``python -m mesh_operator``), so tests can SIGKILL and restart it::

    with KubeMesh(api, kubeconfig, tmp_path, namespace="t-123") as mesh:
        mesh.service("backend", ["backend-1"], labels={"version": "v1"})
        mesh.client("caller", upstreams=["backend"])
        mesh.start_operator()
        mesh.wait_connected()
        resp = mesh.get("caller", "backend", "/hello")

EndpointSlice addresses are placeholders from TEST-NET-1 (192.0.2.0/24), which the adapter never uses (an
instance's address is its Pod's IP): nothing is ever sent to them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from mesh_operator.api import CRD_KINDS
from mesh_operator.control.certs import CertificateManager
from mesh_operator.crdgen import plural as plural_of
from mesh_operator.local import sidecar
from mesh_operator.testing.localmesh import ECHO_APP, Response, eventually, http
from mesh_operator.translate.state import WorkloadInfo
from xds_server.ca import store as ca_store
from xds_server.ports import free_port

__all__ = ["KubeMesh", "OperatorProcess", "eventually"]

GROUP, VERSION = "meshwork.io", "v1alpha1"
#: kind -> plural of every policy kind (as the CRDs name them)
PLURALS = {kind: plural_of(kind) for kind in CRD_KINDS if kind != "Mesh"}


@dataclass
class PodStandIn:
    name: str
    service_account: str
    admin_port: int
    inbound_port: int | None = None
    app_port: int | None = None
    upstream_ports: dict[str, int] = field(default_factory=dict)
    envoy: subprocess.Popen[bytes] | None = None
    app: subprocess.Popen[bytes] | None = None


class OperatorProcess:
    """``python -m mesh_operator`` as a child process with its own ports, killable and restartable."""

    def __init__(
        self,
        kubeconfig: Path,
        ca_dir: Path,
        log_path: Path,
        *,
        trust_domain: str,
        identity: str = "op-1",
        namespace: str = "meshwork-system",
        webhook: bool = False,
        extra_args: list[str] | None = None,
        xds_port: int | None = None,
    ) -> None:
        self.kubeconfig, self.ca_dir, self.log_path = kubeconfig, ca_dir, log_path
        self.trust_domain, self.identity, self.namespace = trust_domain, identity, namespace
        self.xds_port = xds_port or free_port()
        self.admin_port = free_port()
        self.webhook_port = free_port() if webhook else None
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        argv = [
            sys.executable, "-m", "mesh_operator",
            "--kubeconfig", str(self.kubeconfig),
            "--ca-dir", str(self.ca_dir),
            "--trust-domain", self.trust_domain,
            "--xds-port", str(self.xds_port),
            "--admin-port", str(self.admin_port),
            "-n", self.namespace,
            "--identity", self.identity,
        ]  # fmt: skip
        if self.webhook_port is not None:
            argv += ["--webhook-port", str(self.webhook_port)]
        return argv + self.extra_args

    def start(self, *, wait: bool = True, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        log.close()
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"operator exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                return bool(self.admin("/readyz").get("ready"))
            except (OSError, ValueError):
                return False

        try:
            eventually(ready, timeout=timeout, interval=0.1)
        except TimeoutError as e:
            raise TimeoutError(f"operator not ready after {timeout}s:\n{self.log()[-3000:]}") from e

    def admin(self, path: str) -> Any:
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            return json.load(e)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class KubeMesh:
    def __init__(
        self,
        api: Any,
        kubeconfig: Path,
        directory: Path,
        *,
        namespace: str,
        trust_domain: str = "cluster.local",
        ca_dir: Path | None = None,
    ) -> None:
        from kubernetes import client

        self.api = api
        # Plain dicts in and out: typed as Any (the client's stubs want its model classes).
        self.core: Any = client.CoreV1Api(api)
        self.discovery: Any = client.DiscoveryV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)
        self.kubeconfig = kubeconfig
        self.directory = directory
        self.namespace = namespace
        self.trust_domain = trust_domain
        self.ca_dir = ca_dir or directory / "ca"
        issuer = ca_store.load_or_create(self.ca_dir, trust_domain)
        self.certs = CertificateManager(issuer, leaf_ttl=timedelta(hours=24))
        self.xds_port = free_port()
        self.pods: dict[str, PodStandIn] = {}
        self.services: dict[str, list[str]] = {}
        self.operators: list[OperatorProcess] = []

    # ------------------------------------------------------------------ the operator

    def operator(self, identity: str = "op-1", *, webhook: bool = False, extra_args: list[str] | None = None,
                 xds_port: int | None = None) -> OperatorProcess:  # fmt: skip
        op = OperatorProcess(
            self.kubeconfig, self.ca_dir, self.directory / f"operator-{identity}.log", trust_domain=self.trust_domain,
            identity=identity, webhook=webhook, extra_args=extra_args, xds_port=xds_port or self.xds_port,
        )  # fmt: skip
        self.operators.append(op)
        return op

    def start_operator(self, **kwargs: Any) -> OperatorProcess:
        op = self.operator(**kwargs)
        op.start()
        return op

    # ------------------------------------------------------------------ pods, services, slices

    def pod(
        self,
        name: str,
        *,
        service_account: str,
        labels: dict[str, str] | None = None,
        upstreams: list[str] | None = None,
        serves: bool = True,
        echo_args: list[str] | None = None,
        xds_port: int | None = None,
        inbound_port: int | None = None,
    ) -> PodStandIn:
        """Store a Pod (injected, IP 127.0.0.1) and start its sidecar (and app when it serves)."""
        sa = service_account
        with contextlib.suppress(Exception):
            self.core.create_namespaced_service_account(self.namespace, {"metadata": {"name": sa}})
        inbound = (inbound_port or free_port()) if serves else None
        p = PodStandIn(name, sa, free_port(), inbound, free_port() if serves else None)
        p.upstream_ports = {u: free_port() for u in upstreams or []}
        annotations = {"meshwork.io/proxy": "injected", "meshwork.io/admin-port": str(p.admin_port)}
        if p.inbound_port:
            annotations["meshwork.io/inbound-port"] = str(p.inbound_port)
        if p.upstream_ports:
            annotations["meshwork.io/upstreams"] = ",".join(f"{u}:{port}" for u, port in p.upstream_ports.items())
        container: dict[str, Any] = {"name": "app", "image": "localhost/echo:test"}
        if p.app_port:
            container["ports"] = [{"name": "http", "containerPort": p.app_port}]
        body = {
            "metadata": {"name": name, "labels": labels or {}, "annotations": annotations},
            "spec": {"serviceAccountName": sa, "containers": [container, {"name": "meshwork-proxy", "image": "x"}]},
        }
        self.core.create_namespaced_pod(self.namespace, body)
        running = {"podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}], "phase": "Running"}
        self.core.patch_namespaced_pod_status(name, self.namespace, {"status": running})
        self.pods[name] = p
        if p.app_port:
            p.app = self._spawn(
                [sys.executable, str(ECHO_APP), "--name", name, "--port", str(p.app_port), *(echo_args or [])],
                self.directory / f"{name}.app.log",
            )
        self.start_sidecar(name, xds_port=xds_port)
        return p

    def start_sidecar(self, name: str, *, xds_port: int | None = None) -> None:
        p = self.pods[name]
        info = WorkloadInfo(namespace=self.namespace, name=name, service_account=p.service_account)
        d = self.directory / "proxies" / name
        files = sidecar.prepare(d, info, self.certs, xds_port=xds_port or self.xds_port, admin_port=p.admin_port)
        p.envoy = self._spawn(sidecar.envoy_argv(files), d / "stdout.log")

    def stop_sidecar(self, name: str) -> None:
        p = self.pods[name]
        if p.envoy is not None and p.envoy.poll() is None:
            p.envoy.terminate()
            p.envoy.wait(10)

    def service(self, name: str, pods: list[str], *, port: int = 8080, app_protocol: str | None = None) -> None:
        spec_port: dict[str, Any] = {"name": "http", "port": port, "targetPort": "http"}
        if app_protocol:
            spec_port["appProtocol"] = app_protocol
        with contextlib.suppress(Exception):
            self.core.create_namespaced_service(
                self.namespace, {"metadata": {"name": name}, "spec": {"ports": [spec_port]}}
            )
        self.set_endpoints(name, pods)

    def set_endpoints(self, service: str, pods: list[str], *, ready: dict[str, bool] | None = None) -> None:
        """The EndpointSlices of ``service`` list exactly ``pods``. Every stand-in app listens on its own port of
        127.0.0.1, so each pod gets its own slice (as the EndpointSlice controller groups endpoints whose named
        target port resolves to different numbers)."""
        self.services[service] = list(pods)
        selector = f"kubernetes.io/service-name={service}"
        existing = {s.metadata.name for s in self.discovery.list_namespaced_endpoint_slice(
            self.namespace, label_selector=selector).items}  # fmt: skip
        wanted = {}
        for i, p in enumerate(pods):
            name = f"{service}-{p}"
            wanted[name] = {
                "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4",
                "endpoints": [
                    {
                        "addresses": [f"192.0.2.{i + 1}"],
                        "conditions": {"ready": (ready or {}).get(p, True)},
                        "targetRef": {"kind": "Pod", "name": p, "namespace": self.namespace},
                    }
                ],
                "ports": [{"name": "http", "port": self.pods[p].app_port or 8080, "protocol": "TCP"}],
            }
        for name in existing - set(wanted):
            self.discovery.delete_namespaced_endpoint_slice(name, self.namespace)
        for name, body in wanted.items():
            if name in existing:
                self.discovery.replace_namespaced_endpoint_slice(name, self.namespace, body)
            else:
                self.discovery.create_namespaced_endpoint_slice(self.namespace, body)

    def delete_service(self, name: str) -> None:
        self.core.delete_namespaced_service(name, self.namespace)
        self.set_endpoints(name, [])
        self.services.pop(name, None)

    def delete_pod(self, name: str) -> None:
        self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)
        p = self.pods.pop(name)
        for proc in (p.envoy, p.app):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)

    # ------------------------------------------------------------------ policies

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Create the policy in this namespace, or replace its spec (retrying when the operator's status write
        changed the resourceVersion in between, as ``kubectl apply`` does)."""
        from kubernetes.client import ApiException

        doc = json.loads(json.dumps(doc))
        doc.setdefault("metadata", {})["namespace"] = self.namespace
        plural = PLURALS[doc["kind"]]
        name = doc["metadata"]["name"]
        for _ in range(10):
            try:
                current = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name)
            except ApiException as e:
                if e.status != 404:
                    raise
                return dict(self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, doc))
            current["spec"] = doc["spec"]
            try:
                return dict(
                    self.custom.replace_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name, current)
                )
            except ApiException as e:
                if e.status != 409:
                    raise
        raise RuntimeError(f"{doc['kind']}/{name}: conflicts on every attempt")

    def get_policy(self, kind: str, name: str) -> dict[str, Any]:
        obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURALS[kind], name)
        return dict(obj)

    def delete_policy(self, kind: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURALS[kind], name)

    def conditions(self, kind: str, name: str) -> dict[str, str]:
        status = self.get_policy(kind, name).get("status") or {}
        return {c["type"]: c["status"] for c in status.get("conditions") or []}

    def wait_status(self, kind: str, name: str, check: Any, *, timeout: float = 30.0) -> dict[str, Any]:
        """Poll the policy until ``check(obj)`` is truthy; returns the object."""

        def probe() -> dict[str, Any] | None:
            obj = self.get_policy(kind, name)
            return obj if check(obj) else None

        try:
            found = eventually(probe, timeout=timeout, interval=0.2)
            assert found is not None
            return found
        except TimeoutError as e:
            obj = self.get_policy(kind, name)
            raise AssertionError(f"{kind}/{name} status never matched: {json.dumps(obj.get('status'))}") from e

    # ------------------------------------------------------------------ traffic

    def get(self, caller: str, service: str, path: str = "/", **kwargs: Any) -> Response:
        port = self.pods[caller].upstream_ports[service]
        return http(f"http://127.0.0.1:{port}{path}", **kwargs)

    def get_until(
        self,
        caller: str,
        service: str,
        path: str,
        check: Callable[[Response], bool],
        *,
        timeout: float = 20.0,
        **kwargs: Any,
    ) -> Response:
        """GET until ``check`` holds for the response (bounded). A refused connection counts as "not yet": a
        caller's listener that a policy just updated may still be warming."""

        def attempt() -> Response | None:
            try:
                response = self.get(caller, service, path, **kwargs)
            except OSError:
                return None
            return response if check(response) else None

        response = eventually(attempt, timeout=timeout)
        assert response is not None
        return response

    def wait_connected(self, operator: OperatorProcess, *, timeout: float = 60.0) -> None:
        """Until every sidecar is connected and runs the operator's desired config."""

        def synced() -> bool:
            sync = operator.admin("/debug/syncz")["proxies"]
            want = {f"{self.namespace}/{n}" for n, p in self.pods.items() if p.envoy and p.envoy.poll() is None}
            mine = {n: p for n, p in sync.items() if n in want}
            return set(mine) == want and all(p["in_sync"] for p in mine.values())

        try:
            eventually(synced, timeout=timeout, interval=0.2)
        except TimeoutError as e:
            state = operator.admin("/debug/syncz")
            raise AssertionError(f"proxies not in sync: {state}\n{operator.log()[-2000:]}") from e

    # ------------------------------------------------------------------ lifecycle

    def _spawn(self, argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def close(self) -> None:
        for p in self.pods.values():
            for proc in (p.envoy, p.app):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
        for p in self.pods.values():
            for proc in (p.envoy, p.app):
                if proc is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(10)
        for op in self.operators:
            op.stop()
        # Leave nothing behind for later tests' operators (a bare apiserver never finishes deleting namespaces).
        for plural in PLURALS.values():
            with contextlib.suppress(Exception):
                self.custom.delete_collection_namespaced_custom_object(GROUP, VERSION, self.namespace, plural)
        with contextlib.suppress(Exception):
            self.core.delete_collection_namespaced_pod(self.namespace, grace_period_seconds=0)
        with contextlib.suppress(Exception):
            self.discovery.delete_collection_namespaced_endpoint_slice(self.namespace)
        for svc in list(self.services):
            with contextlib.suppress(Exception):
                self.core.delete_namespaced_service(svc, self.namespace)

    def __enter__(self) -> KubeMesh:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def time_of(self) -> float:
        return time.monotonic()
