"""Pod networking on the real cluster: DNS through CoreDNS, Services through kube-proxy, the API from a pod, and
nothing leaving the machine (outside names refused, a packet toward a non-local pod address dropped by the guard).

The pods run the control-plane image (it has Python); traffic goes only to pods and Services of this cluster.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from typing import Any

import pytest

from mesh_operator.testing import _cluster_host as host
from mesh_operator.testing.cluster import Cluster
from tests.cluster.helpers import run_pod

SERVER = textwrap.dedent(
    """
    import http.server, socket
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = socket.gethostname().encode()
            self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a): pass
    http.server.ThreadingHTTPServer(("", 8080), H).serve_forever()
    """
)

CLIENT = textwrap.dedent(
    """
    import json, socket, urllib.request
    out = {}
    out["service_ip"] = socket.gethostbyname("echo")
    out["via_service"] = urllib.request.urlopen("http://echo/", timeout=5).read().decode()
    out["via_fqdn"] = urllib.request.urlopen("http://echo.%s.svc.cluster.local/" % NS, timeout=5).read().decode()
    out["via_pod_ip"] = urllib.request.urlopen("http://%s:8080/" % POD_IP, timeout=5).read().decode()
    s = socket.create_connection(("kubernetes.default.svc", 443), timeout=5); s.close(); out["api"] = "connected"
    try:
        socket.getaddrinfo("outside.example.com.", 80); out["outside"] = "resolved"
    except socket.gaierror as e:
        out["outside"] = "refused: %s" % e
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b"probe", (PROBE, 9)); u.close()
    print(json.dumps(out))
    """
)


def _guard_forward_drops() -> int:
    out = subprocess.run(
        ["iptables", "-w", "5", "-t", "filter", "-L", host.GUARD_CHAIN, "-v", "-x", "-n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(int(line.split()[0]) for line in out.splitlines() if line.split()[:1] and line.split()[0].isdigit())


@pytest.fixture
def echo(cluster: Cluster, cluster_namespace: str, images: dict[str, str]) -> dict[str, Any]:
    ns = cluster_namespace
    labels = {"app": "echo"}
    objects = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "echo", "namespace": ns},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [
                            {
                                "name": "echo",
                                "image": images["control-plane"],
                                "imagePullPolicy": "Never",
                                "command": ["python3", "-c", SERVER],
                                "ports": [{"containerPort": 8080}],
                                "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                            }
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "echo", "namespace": ns},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    ]
    cluster.apply(objects)
    cluster.kubectl("rollout", "status", "deployment/echo", "-n", ns, "--timeout=120s", timeout=150)
    pod = json.loads(cluster.kubectl("get", "pods", "-n", ns, "-l", "app=echo", "-o", "json"))["items"][0]
    service_ip = cluster.kubectl("get", "service", "echo", "-n", ns, "-o", "jsonpath={.spec.clusterIP}").strip()
    return {"pod": pod["metadata"]["name"], "pod_ip": pod["status"]["podIP"], "service_ip": service_ip}


def test_a_pod_reaches_a_service_by_name_and_the_api_while_outside_names_and_addresses_go_nowhere(
    cluster: Cluster, cluster_namespace: str, images: dict[str, str], echo: dict[str, Any]
) -> None:
    script = f"NS = {cluster_namespace!r}; POD_IP = {echo['pod_ip']!r}; PROBE = {host.GUARD_PROBE_ADDRESS!r}\n"
    before = _guard_forward_drops()
    phase, logs = run_pod(
        cluster, cluster_namespace, "client", images["control-plane"], ["python3", "-c", script + CLIENT]
    )
    assert phase == "Succeeded", logs
    result = json.loads(logs.strip().splitlines()[-1])
    assert result["service_ip"] == echo["service_ip"]
    assert result["via_service"] == result["via_fqdn"] == result["via_pod_ip"] == echo["pod"]
    assert result["api"] == "connected"
    assert result["outside"].startswith("refused"), result
    assert _guard_forward_drops() > before, "the pod's packet toward a non-local pod address was not dropped"
