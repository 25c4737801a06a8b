"""What the e2e stories share: Helm, the example app as ordinary Deployments + Services, and a client inside a pod.

Every request of these tests goes from a pod of the test cluster to a Service or pod of that cluster (or through
`kubectl exec` / `port-forward`, i.e. the API server on the cluster's bridge address). Every loop is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from mesh_operator.testing import cache_dir
from mesh_operator.testing.binaries import k8s_version
from mesh_operator.testing.cluster import Cluster, ClusterError
from mesh_operator.testing.existing_cluster import ExistingCluster

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "meshwork"
ECHO = ROOT / "examples" / "apps" / "echo.py"
NS = "meshwork-system"
RELEASE = "meshwork"
DEPLOYMENT = "meshwork-control-plane"
CP_SELECTOR = "app.kubernetes.io/component=control-plane"

T = TypeVar("T")


def helm(cluster: Cluster, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    binary = cache_dir() / k8s_version() / "helm"
    if not os.access(binary, os.X_OK) and isinstance(cluster, ExistingCluster):
        binary = Path(shutil.which("helm") or binary)  # a user's cluster: their helm will do
    if not os.access(binary, os.X_OK):
        pytest.fail(f"helm missing at {binary}: run `make k8s-binaries`", pytrace=False)
    return subprocess.run(
        [str(binary), f"--kubeconfig={cluster.kubeconfig_path}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _split(image: str) -> dict[str, str]:
    repo, tag = image.rsplit(":", 1)
    return {"repository": repo, "tag": tag, "pullPolicy": "IfNotPresent"}


def values(images: dict[str, str], **control_plane: Any) -> dict[str, Any]:
    """Chart values for this cluster: the images of `make images`, small requests (2 cores for everything)."""
    return {
        "controlPlane": {
            "image": _split(images["control-plane"]),
            "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "512Mi"}},
            **control_plane,
        },
        "proxy": {
            "image": _split(images["sidecar"]),
            "resources": {"requests": {"cpu": "10m", "memory": "48Mi"}, "limits": {"memory": "256Mi"}},
        },
    }


def write_values(tmp: Path, data: dict[str, Any]) -> Path:
    path = tmp / f"values-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def wait(what: str, probe: Callable[[], T | None], timeout: float = 120.0, interval: float = 1.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (ClusterError, subprocess.TimeoutExpired, ValueError) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {str(last)[-1500:]})")


def get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json"))


@dataclass
class Mesh:
    cluster: Cluster
    images: dict[str, str]

    def control_plane_pods(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = get_json(self.cluster, "pods", "-n", NS, "-l", CP_SELECTOR)["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def logs(self) -> str:
        return self.cluster.kubectl("logs", "-n", NS, "-l", CP_SELECTOR, "--tail=200", check=False)

    def admin(self, path: str, pod: str | None = None) -> Any:
        """GET on a control-plane pod's admin endpoint (loopback in its pod), through `kubectl exec`."""
        pod = pod or self.control_plane_pods()[0]["metadata"]["name"]
        script = f"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:15014{path}',timeout=10).read().decode())"
        return json.loads(self.cluster.kubectl("exec", "-n", NS, pod, "--", "python3", "-c", script))


def install_mesh(cluster: Cluster, images: dict[str, str], tmp: Path | None = None) -> Mesh:
    tmp = tmp or Path(cluster.kubeconfig_path).parent
    path = write_values(tmp, values(images))
    done = helm(
        cluster, "upgrade", "--install", RELEASE, str(CHART), "-n", NS, "--create-namespace", "-f", str(path),
        "--wait", "--timeout", "240s",
    )  # fmt: skip
    mesh = Mesh(cluster, images)
    if done.returncode != 0:
        raise AssertionError(f"helm install failed: {done.stdout}{done.stderr}\n{mesh.logs()}")
    wait("the webhooks' caBundle is set by the control plane", lambda: ca_bundles_set(cluster), 60)
    return mesh


def ca_bundles_set(cluster: Cluster) -> bool:
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        body = get_json(cluster, kind, DEPLOYMENT)
        if not all(h["clientConfig"].get("caBundle") for h in body["webhooks"]):
            return False
    return True


def uninstall_mesh(cluster: Cluster) -> None:
    helm(cluster, "uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "120s")


# ---------------------------------------------------------------------- the example app


def label_for_injection(cluster: Cluster, ns: str) -> None:
    cluster.kubectl("label", "namespace", ns, "meshwork.io/inject=enabled", "--overwrite")
    # The control plane publishes its roots there (the sidecar's agent trusts them for its first request).
    wait(
        f"ConfigMap meshwork-root-ca published in {ns}",
        lambda: cluster.kubectl("get", "configmap", "meshwork-root-ca", "-n", ns, check=False),
        60,
    )


def echo_configmap() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "echo"},
        "data": {"echo.py": ECHO.read_text()},
    }


def deployment(
    name: str,
    image: str,
    *,
    app: str,
    version: str | None = None,
    replicas: int = 1,
    args: tuple[str, ...] = (),
    account: str | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An ordinary Deployment of examples/apps/echo.py on port 8080 with a readiness probe; nothing mesh-specific."""
    labels = {"app": app, **({"version": version} if version else {})}
    container = {
        "name": "app",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "/app/echo.py", "--name", name, "--port", "8080", "--address", "0.0.0.0", *args],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 2},
        # the usual graceful shutdown: keep serving while the endpoint removal reaches every caller
        "lifecycle": {"preStop": {"sleep": {"seconds": 3}}},
        "resources": {"requests": {"cpu": "5m", "memory": "24Mi"}, "limits": {"memory": "128Mi"}},
        "volumeMounts": [{"name": "app", "mountPath": "/app", "readOnly": True}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations or {}},
                "spec": {
                    "serviceAccountName": account or app,
                    "terminationGracePeriodSeconds": 10,
                    "containers": [container],
                    "volumes": [{"name": "app", "configMap": {"name": "echo"}}],
                },
            },
        },
    }


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]},
    }


def account(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}


def example_app(image: str) -> list[dict[str, Any]]:
    """frontend -> http://backend:8080; backend v1 x2 and v2 (examples/apps/echo.py)."""
    return [
        echo_configmap(),
        account("frontend"),
        account("backend"),
        service("frontend"),
        service("backend"),
        deployment("frontend", image, app="frontend", args=("--upstream", "http://backend:8080")),
        deployment("backend-v1", image, app="backend", version="v1", replicas=2),
        deployment("backend-v2", image, app="backend", version="v2"),
    ]


def apply(cluster: Cluster, ns: str, objects: list[dict[str, Any]]) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(objects))


def rollout(cluster: Cluster, ns: str, *deployments: str, timeout: int = 180) -> None:
    for d in deployments:
        done = subprocess.run(
            [str(cluster.binaries["kubectl"]), f"--kubeconfig={cluster.kubeconfig_path}", "rollout", "status",
             f"deployment/{d}", "-n", ns, f"--timeout={timeout}s"],
            capture_output=True, text=True, timeout=timeout + 30, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            pods = cluster.kubectl("get", "pods", "-n", ns, "-o", "wide", check=False)
            described = cluster.kubectl("describe", "pods", "-n", ns, "-l", f"app={d.split('-')[0]}", check=False)
            raise AssertionError(f"deployment {d} not rolled out: {done.stderr}\n{pods}\n{described[-4000:]}")


def pods(cluster: Cluster, ns: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get_json(cluster, "pods", "-n", ns, "-l", selector)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


# ---------------------------------------------------------------------- a client inside a pod

#: Runs in the app container of a pod (python3, standard library): n GETs, one line of JSON out.
CLIENT = textwrap.dedent(
    """
    import json, os, sys, time, urllib.error, urllib.request
    spec = json.loads(sys.argv[1])
    out = []
    for i in range(spec["n"]):
        if spec.get("stop") and os.path.exists(spec["stop"]):  # stopped early by the test (Load.stop)
            break
        req = urllib.request.Request(spec["url"], headers=spec.get("headers") or {})
        sent = time.time()
        try:
            with urllib.request.urlopen(req, timeout=spec.get("timeout", 5)) as r:
                body, h = r.read().decode(errors="replace")[:3000], r.headers
                out.append([r.status, h.get("x-served-by", ""), body, h.get("x-served-by-pod", ""), sent])
        except urllib.error.HTTPError as e:
            body = e.read().decode(errors="replace")[:3000]
            out.append([e.code, e.headers.get("x-served-by", ""), body, e.headers.get("x-served-by-pod", ""), sent])
        except Exception as e:
            out.append([0, "", repr(e), "", sent])
        if spec.get("interval"):
            time.sleep(spec["interval"])
    if spec.get("out"):  # a detached run: the whole result appears at once
        with open(spec["out"] + ".tmp", "w") as f:
            f.write(json.dumps(out))
        os.replace(spec["out"] + ".tmp", spec["out"])
    else:
        print(json.dumps(out))
    """
)

#: prints a file when it exists (nothing otherwise)
READ = "import pathlib, sys; p = pathlib.Path(sys.argv[1]); print(p.read_text() if p.exists() else '', end='')"

#: starts CLIENT in a session of its own and returns at once: the load outlives the `kubectl exec` that started it
DETACH = (
    "import subprocess, sys; subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]], "
    "start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(sys.argv[3], 'w'))"
)


@dataclass(frozen=True)
class Reply:
    status: int
    served_by: str  # the answering app's --name (its Deployment), header x-served-by
    body: str
    pod: str = ""  # the answering pod's hostname (its name), header x-served-by-pod
    #: when the client sent the request (seconds since the epoch, the pod's clock)
    sent: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)


def _argv(cluster: Cluster, ns: str, target: str, spec: dict[str, Any]) -> list[str]:
    return [
        str(cluster.binaries["kubectl"]), f"--kubeconfig={cluster.kubeconfig_path}", "exec", "-n", ns, target,
        "-c", "app", "--", "python3", "-c", CLIENT, json.dumps(spec),
    ]  # fmt: skip


def call(
    cluster: Cluster,
    ns: str,
    target: str,
    url: str,
    n: int = 1,
    *,
    headers: dict[str, str] | None = None,
    interval: float = 0.0,
    timeout: float = 5.0,
) -> list[Reply]:
    """``n`` GETs of ``url`` from the app container of ``target`` (``deploy/frontend`` or a pod name)."""
    spec = {"url": url, "n": n, "headers": headers or {}, "interval": interval, "timeout": timeout}
    budget = 60 + n * (timeout + interval)
    done = subprocess.run(_argv(cluster, ns, target, spec), capture_output=True, text=True, timeout=budget, check=False)
    if done.returncode != 0:
        raise ClusterError(f"client in {ns}/{target} exited {done.returncode}: {done.stderr[-2000:]}")
    return [Reply(*r) for r in json.loads(done.stdout)]


class Load:
    """Steady, bounded load from a pod: ``n`` GETs ``interval`` apart, run while the test changes the cluster.

    The client runs detached inside the pod and leaves its result in a file there, read by short `kubectl exec`
    calls afterwards: a long exec stream through the API server breaks when the test restarts what it passes
    through, which would be the harness failing, not a request."""

    def __init__(self, cluster: Cluster, ns: str, target: str, url: str, *, n: int, interval: float) -> None:
        import uuid

        self.cluster, self.ns = cluster, ns
        self.budget = 90 + n * (interval + 0.5)
        self.pod = self._exec(target, "import socket; print(socket.gethostname())").strip()
        self.path = f"/tmp/load-{uuid.uuid4().hex[:8]}"
        spec = {"url": url, "n": n, "interval": interval, "timeout": 5, "out": f"{self.path}.json",
                "stop": f"{self.path}.stop"}  # fmt: skip
        self._exec(self.pod, DETACH, CLIENT, json.dumps(spec), f"{self.path}.err")

    def _exec(self, target: str, program: str, *args: str, check: bool = True) -> str:
        return self.cluster.kubectl("exec", "-n", self.ns, target, "-c", "app", "--", "python3", "-c", program, *args,
                                    check=check)  # fmt: skip

    def _read(self, suffix: str) -> str:
        return self._exec(self.pod, READ, f"{self.path}{suffix}", check=False)

    def stop(self) -> None:
        """End the load after the request in flight (at most ``n`` are sent either way)."""
        self._exec(self.pod, "import pathlib, sys; pathlib.Path(sys.argv[1]).touch()", f"{self.path}.stop")

    def result(self) -> list[Reply]:
        try:
            out = wait(f"the load client in {self.ns}/{self.pod} done", lambda: self._read(".json"), self.budget, 2)
        except AssertionError:
            raise ClusterError(f"load client did not finish: {self._read('.err')[-2000:]}") from None
        return [Reply(*r) for r in json.loads(out)]


def failures(replies: list[Reply]) -> list[Reply]:
    return [r for r in replies if r.status != 200]


# ---------------------------------------------------------------------- a namespace per story


class Namespace:
    """A namespace of one story (module-scoped): created labelled for injection, deleted after, without waiting."""

    def __init__(self, cluster: Cluster, prefix: str, *, inject: bool = True) -> None:
        import uuid

        self.cluster = cluster
        self.name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        cluster.kubectl("create", "namespace", self.name)
        cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", self.name, "--timeout=60s")
        if inject:
            label_for_injection(cluster, self.name)

    def delete(self) -> None:
        self.cluster.kubectl("delete", "namespace", self.name, "--wait=false", check=False)


def deploy_example_app(mesh: Mesh, ns: str) -> None:
    apply(mesh.cluster, ns, example_app(mesh.images["control-plane"]))
    rollout(mesh.cluster, ns, "frontend", "backend-v1", "backend-v2")


def container_names(pod: dict[str, Any]) -> tuple[list[str], list[str]]:
    spec = pod["spec"]
    return [c["name"] for c in spec.get("initContainers") or []], [c["name"] for c in spec["containers"]]


def wait_synced(mesh: Mesh, ns: str, count: int, timeout: float = 90) -> dict[str, Any]:
    """Until ``count`` proxies of ``ns`` are connected and have ACKed the latest snapshot (admin /debug/syncz)."""

    def synced() -> dict[str, Any] | None:
        sync = mesh.admin("/debug/syncz")
        proxies = {k: v for k, v in _proxies(sync).items() if k.startswith(f"{ns}/")}
        if len(proxies) == count and all(_is_synced(v) for v in proxies.values()):
            return proxies
        return None

    return wait(f"{count} proxies of {ns} SYNCED", synced, timeout, interval=2)


def wait_synced_on(mesh: Mesh, ns: str, count: int, replicas: set[str], timeout: float = 120) -> dict[str, str]:
    """Until ``count`` proxies of ``ns`` are connected to the control-plane pods ``replicas`` (and to no other) and
    have ACKed their latest snapshot. Each replica's /debug/syncz lists the proxies connected to it. Returns proxy ->
    the replica it is connected to."""

    seen: dict[str, Any] = {}

    def synced() -> dict[str, str] | None:
        where: dict[str, str] = {}
        seen.clear()
        for pod in sorted(_names(mesh.control_plane_pods())):
            table = _proxies(mesh.admin("/debug/syncz", pod))
            seen[pod] = {
                k: {"in_sync": v.get("in_sync"), "desired": v.get("desired_version"), "acked": v.get("acked_version")}
                for k, v in table.items()
                if k.startswith(f"{ns}/")
            }
            for key, proxy in table.items():
                if key.startswith(f"{ns}/") and _is_synced(proxy):
                    where[key] = pod
        if len(where) == count and set(where.values()) <= replicas:
            return where
        return None

    try:
        return wait(f"{count} proxies of {ns} SYNCED on {sorted(replicas)}", synced, timeout, interval=2)
    except AssertionError as e:
        raise AssertionError(f"{e}; each replica's view: {json.dumps(seen)[-3000:]}") from None


def _names(items: list[dict[str, Any]]) -> set[str]:
    return {str(p["metadata"]["name"]) for p in items}


def _proxies(sync: Any) -> dict[str, Any]:
    return dict(sync.get("proxies") or {}) if isinstance(sync, dict) else {}


def _is_synced(p: Any) -> bool:
    return isinstance(p, dict) and p.get("in_sync") is True


# ---------------------------------------------------------------------- policies

PLURAL = {"TrafficPolicy": "trafficpolicies", "RetryPolicy": "retrypolicies", "AccessPolicy": "accesspolicies"}


def apply_policy(cluster: Cluster, ns: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Apply a policy and wait until its status shows this generation Programmed and every affected sidecar ACKed
    it (receipts n/n): what a user waits for before judging the effect. Returns the status."""
    doc = {"apiVersion": "meshwork.io/v1alpha1", **doc}
    doc["metadata"] = {**doc["metadata"], "namespace": ns}
    apply(cluster, ns, [doc])
    kind, name = doc["kind"], doc["metadata"]["name"]

    def applied() -> dict[str, Any] | None:
        body = get_json(cluster, PLURAL[kind], name, "-n", ns)
        status = body.get("status") or {}
        receipts = status.get("proxies") or {}
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        if (
            status.get("observedGeneration") == body["metadata"]["generation"]
            and conditions.get("Programmed") == "True"
            and receipts.get("affected", 0) > 0
            and receipts.get("applied") == receipts.get("affected")
        ):
            return status
        return None

    return wait(f"{kind} {ns}/{name} applied n/n", applied, 90, interval=1)


def delete_policy(cluster: Cluster, ns: str, kind: str, name: str) -> None:
    cluster.kubectl("delete", PLURAL[kind], name, "-n", ns, "--wait=true", "--timeout=60s")
