"""Prometheus metrics: Envoy's per-route and per-cluster counters name our policies and clusters and count the
requests sent; the control plane's own ``/metrics`` shows pushes, connected proxies, NACKs and convergence."""

from __future__ import annotations

import re

import pytest

from mesh_operator.testing.localmesh import LocalMeshBuilder, http

pytestmark = pytest.mark.timeout(90)

POLICY = """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: backend}
spec:
  targetRef: {name: backend}
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
  rules:
    - name: canary
      matches: [{headers: [{name: x-canary, type: Exact, value: "yes"}]}]
      backends: [{subset: v2, weight: 100}]
    - name: stable
      backends: [{subset: v1, weight: 100}]
"""

SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text exposition -> (metric, labels, value) samples."""
    out = []
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and not line.startswith("#"):
            out.append((m["name"], dict(LABEL.findall(m["labels"] or "")), float(m["value"])))
    return out


def value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    found = [v for n, lab, v in samples if n == name and all(lab.get(k) == want for k, want in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


def test_envoy_prometheus_counters_name_the_policy_route_and_cluster_and_count_the_requests(
    mesh: LocalMeshBuilder,
) -> None:
    mesh.service(
        "backend",
        instances=[
            {"name": "backend-v1", "labels": {"version": "v1"}},
            {"name": "backend-v2", "labels": {"version": "v2"}},
        ],
    )
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(POLICY)
    with mesh.run() as m:
        for i in range(7):
            assert m.get("caller", "backend", f"/s{i}").served_by == "backend-v1"
        for i in range(4):
            assert m.get("caller", "backend", f"/c{i}", headers={"x-canary": "yes"}).served_by == "backend-v2"
        samples = parse(m.sidecar_admin("caller", "/stats/prometheus"))

        # Per cluster: the label is the whole cluster name ``svc.ns|port|subset`` (dots, which Envoy uses to split
        # stat names, read as ``_``), so every subset is one label value of one metric.
        rq = "envoy_cluster_upstream_rq_total"
        assert value(samples, rq, envoy_cluster_name="backend_default|80|v1") == 7
        assert value(samples, rq, envoy_cluster_name="backend_default|80|v2") == 4
        assert value(samples, "envoy_cluster_upstream_rq", envoy_cluster_name="backend_default|80|v1",
                     envoy_response_code="200") == 7  # fmt: skip

        # Per route: the route label names the TrafficPolicy (Kind_namespace_name) and the rule.
        routes = {lab["envoy_route"]: v for n, lab, v in samples if n == "envoy_vhost_route_upstream_rq_total"}
        assert routes == {
            "trafficpolicy_default_backend_backend_default_stable": 7,
            "trafficpolicy_default_backend_backend_default_canary": 4,
        }
        vhosts = {lab["envoy_virtual_host"] for n, lab, _ in samples if n == "envoy_vhost_route_upstream_rq_total"}
        assert len(vhosts) == 1 and vhosts.pop().endswith("|backend_default")


def test_the_control_plane_exports_pushes_connected_proxies_nacks_and_a_convergence_histogram(
    mesh: LocalMeshBuilder,
) -> None:
    mesh.service("backend", instances=[{"name": "backend-v1", "labels": {"version": "v1"}}])
    mesh.client("caller", upstreams=["backend"])
    file = mesh.policy(POLICY)
    with mesh.run() as m:
        m.edit(file, POLICY.replace('"yes"', '"always"'))  # a new snapshot, ACKed: feeds the histogram
        resp = http(f"http://127.0.0.1:{m.admin_port}/metrics")
        assert resp.status == 200 and resp.headers["content-type"].startswith("text/plain")
        text = resp.body.decode()
        samples = parse(text)

        assert value(samples, "meshwork_xds_connected_proxies") == 2
        assert value(samples, "meshwork_xds_proxies_in_sync") == 2
        for t in ("Listener", "RouteConfiguration", "Cluster", "ClusterLoadAssignment", "Secret"):
            assert value(samples, "meshwork_xds_pushes_total", type=t) >= 2  # every proxy got every type
            assert value(samples, "meshwork_xds_acks_total", type=t) >= 2
        assert value(samples, "meshwork_xds_streams_total", kind="sotw") == 2
        assert "# TYPE meshwork_xds_nacks_total counter" in text
        assert not [s for s in samples if s[0] == "meshwork_xds_nacks_total" and s[2] > 0]  # nothing was rejected

        assert "# TYPE meshwork_xds_convergence_seconds histogram" in text
        count = value(samples, "meshwork_xds_convergence_seconds_count")
        assert count >= 1  # the edit (it changes the caller's routes) converged
        buckets = [(float(lab["le"]), v) for n, lab, v in samples if n == "meshwork_xds_convergence_seconds_bucket"]
        assert [le for le, _ in buckets] == sorted(le for le, _ in buckets)
        assert [c for _, c in buckets] == sorted(c for _, c in buckets)  # cumulative
        assert buckets[-1] == (float("inf"), count)
        assert value(samples, "meshwork_xds_convergence_seconds_bucket", le="2.5") == count  # all within 2.5 s
