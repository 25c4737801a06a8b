"""Fault injection: a fixed delay adds about the configured time; an abort answers the configured status for
about the configured share of requests, without the request ever reaching the destination."""

from __future__ import annotations

import statistics

from mesh_operator.testing.localmesh import LocalMeshBuilder

FAULTS = """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: backend}
spec:
  targetRef: {name: backend}
  rules:
    - name: delayed
      matches: [{path: {type: PathPrefix, value: /delayed}}]
      fault: {delay: {fixedDelay: 400ms, percent: 100}}
    - name: always-aborted
      matches: [{path: {type: PathPrefix, value: /teapot}}]
      fault: {abort: {httpStatus: 418, percent: 100}}
    - name: half-aborted
      matches: [{path: {type: PathPrefix, value: /flaky}}]
      fault: {abort: {httpStatus: 503, percent: 30}}
"""


def test_a_fixed_delay_adds_about_the_configured_time(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(FAULTS)
    with mesh.run() as m:
        m.get("caller", "backend", "/warm-up")  # the first request also pays for the mTLS handshake
        plain = [m.get("caller", "backend", "/plain") for _ in range(5)]
        delayed = [m.get("caller", "backend", "/delayed") for _ in range(5)]
        assert all(r.status == 200 for r in plain + delayed)
        assert {r.served_by for r in delayed} == {"backend-1"}
        baseline = statistics.median(r.elapsed for r in plain)
        # 400 ms configured. Envoy's timer fires on time (a few ms early at worst: its clock is coarser than ours);
        # the upper bound leaves 300 ms for scheduling noise on a busy 2-core machine.
        assert all(0.39 <= r.elapsed <= baseline + 0.7 for r in delayed), (baseline, [r.elapsed for r in delayed])
        assert statistics.median(r.elapsed for r in delayed) - baseline >= 0.35, baseline


def test_an_abort_answers_the_configured_status_at_the_configured_rate(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(FAULTS)
    with mesh.run() as m:
        app_before = m.stat_sum("backend-1", r"^http\.inbound_\d+\.downstream_rq_total$")
        teapots = [m.get("caller", "backend", "/teapot").status for _ in range(10)]
        assert teapots == [418] * 10
        # An aborted request never leaves the caller's sidecar.
        assert m.stat_sum("backend-1", r"^http\.inbound_\d+\.downstream_rq_total$") == app_before

        n = 200
        statuses = [m.get("caller", "backend", f"/flaky/{i}").status for i in range(n)]
        aborted = statuses.count(503)
        assert aborted + statuses.count(200) == n, set(statuses)
        # 30 % of 200: binomial standard deviation sqrt(200 * 0.3 * 0.7) ~ 6.5; 4 sigma ~ 26 (flake odds ~6e-5).
        assert abs(aborted - 0.3 * n) <= 26, aborted
        assert m.stat_sum("caller", r"\.fault\.aborts_injected$") >= 10 + aborted
