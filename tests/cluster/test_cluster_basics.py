"""The cluster itself: a node that runs pods, the egress guard in place, DNS that answers only for the cluster."""

from __future__ import annotations

import json
import subprocess

from mesh_operator.testing import _cluster_host as host
from mesh_operator.testing._cluster_config import NODE_NAME, PAUSE_IMAGE
from mesh_operator.testing.cluster import Cluster


def _deployment(name: str, replicas: int) -> dict[str, object]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "pause", "image": PAUSE_IMAGE, "imagePullPolicy": "Never"}],
                    "terminationGracePeriodSeconds": 1,
                },
            },
        },
    }


def test_the_node_registers_ready_with_the_pod_cidr_the_controller_manager_allocated(cluster: Cluster) -> None:
    node = json.loads(cluster.kubectl("get", "node", NODE_NAME, "-o", "json"))
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
    assert ready == "True"
    assert node["spec"]["podCIDR"] == host.NODE_POD_CIDR
    assert {"type": "InternalIP", "address": host.NODE_IP} in node["status"]["addresses"]


def test_a_two_replica_deployment_of_a_local_image_becomes_available_with_pod_ips_on_the_bridge(
    cluster: Cluster, cluster_namespace: str
) -> None:
    ns = cluster_namespace
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(_deployment("pause", 2)))
    cluster.kubectl("rollout", "status", "deployment/pause", "-n", ns, "--timeout=120s", timeout=150)
    pods = json.loads(cluster.kubectl("get", "pods", "-n", ns, "-l", "app=pause", "-o", "json"))["items"]
    ips = sorted(p["status"]["podIP"] for p in pods)
    assert len(ips) == 2
    assert len(set(ips)) == 2
    assert all(ip.startswith("10.244.0.") for ip in ips), ips


def test_the_egress_guard_stays_first_in_mangle_postrouting_while_the_cluster_runs(cluster: Cluster) -> None:
    assert cluster.guard_drops >= 1  # the deliberate probe at start was dropped
    rules = subprocess.run(
        ["iptables", "-w", "5", "-t", "mangle", "-S", "POSTROUTING"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert rules[1] == f"-A POSTROUTING -j {host.GUARD_CHAIN}", rules
    drops = subprocess.run(
        ["iptables", "-w", "5", "-t", "mangle", "-S", host.GUARD_CHAIN], capture_output=True, text=True, check=True
    ).stdout
    for iface in host.outbound_interfaces():
        assert f"-A {host.GUARD_CHAIN} -s {host.POD_CIDR} -o {iface} -j DROP" in drops
