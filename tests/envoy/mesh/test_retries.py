"""Retries: attempts absorb a flaky destination, retryOn decides what is retried, the per-try timeout cuts a slow
try short, and the retry budget keeps a failing destination from turning into a retry storm."""

from __future__ import annotations

from mesh_operator.testing.localmesh import LocalMeshBuilder

RETRY_STATS = r"^cluster\.backend.*\.upstream_rq_retry$"


def retry_policy(**spec: str) -> str:
    body = "\n".join(f"  {k}: {v}" for k, v in spec.items())
    return f"""
apiVersion: meshwork.io/v1alpha1
kind: RetryPolicy
metadata: {{name: backend}}
spec:
  targetRef: {{name: backend}}
{body}
"""


def test_retries_absorb_a_backend_that_fails_every_other_request(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend", instances=[{"name": "flaky", "args": ["--fail-every", "2"]}])
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(retry_policy(attempts="2", retryOn="[5xx]"))
    with mesh.run() as m:
        n = 40
        statuses = [m.get("caller", "backend", f"/r{i}").status for i in range(n)]
        assert statuses == [200] * n
        # Requests alternate with the app's failures: about every second request needed one retry.
        assert m.stat_sum("caller", RETRY_STATS) >= n // 2 - 1


def test_a_503_is_not_retried_when_retry_on_does_not_cover_it(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend", instances=[{"name": "flaky", "args": ["--fail-every", "2"]}])
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(retry_policy(attempts="3", retryOn="[connect-failure, reset]"))
    with mesh.run() as m:
        n = 20
        statuses = [m.get("caller", "backend", f"/r{i}").status for i in range(n)]
        # Sequential requests: the app fails exactly its 2nd, 4th, ... request, and nothing hides it.
        assert statuses == [200, 503] * (n // 2)
        assert m.stat_sum("caller", RETRY_STATS) == 0


def test_retriable_status_codes_retry_only_the_listed_codes(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend", instances=[{"name": "flaky", "args": ["--fail-every", "2"]}])
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(retry_policy(attempts="2", retryOn="[retriable-status-codes]", retriableStatusCodes="[503]"))
    with mesh.run() as m:
        statuses = [m.get("caller", "backend", f"/r{i}").status for i in range(20)]
        assert statuses == [200] * 20
        assert m.stat_sum("caller", RETRY_STATS) >= 9


def test_the_per_try_timeout_cuts_a_slow_try_and_the_retry_is_served_elsewhere(mesh: LocalMeshBuilder) -> None:
    mesh.service(
        "backend",
        instances=[{"name": "slow", "args": ["--delay-ms", "2000"]}, {"name": "fast"}],
    )
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(retry_policy(attempts="3", retryOn="[5xx]", perTryTimeout="200ms", backoff="{baseInterval: 10ms}"))
    with mesh.run() as m:
        responses = [m.get("caller", "backend", f"/r{i}") for i in range(8)]
        assert [r.status for r in responses] == [200] * 8
        assert {r.served_by for r in responses} == {"fast"}
        # Round robin sends about half the first tries to the slow instance; each is cut after 200 ms and retried
        # (the retry may land on "slow" once more: at most 3 cut tries before the route's 15 s default). Never
        # anywhere near the slow instance's 2 s.
        assert max(r.elapsed for r in responses) < 1.2, [r.elapsed for r in responses]
        assert m.stat_sum("caller", r"^cluster\.backend.*\.upstream_rq_per_try_timeout$") >= 1


BUDGET = """
apiVersion: meshwork.io/v1alpha1
kind: RetryPolicy
metadata: {name: backend}
spec:
  targetRef: {name: backend}
  attempts: 5
  retryOn: [5xx]
  backoff: {baseInterval: 10ms, maxInterval: 20ms}
  budget: {percent: 10, minRetryConcurrency: 1}
"""


def test_the_retry_budget_keeps_a_failing_backend_from_a_retry_storm(mesh: LocalMeshBuilder) -> None:
    # Every request fails after 300 ms, so many are in flight at once and every one of them wants 5 retries.
    mesh.service("backend", instances=[{"name": "down", "args": ["--fail-every", "1", "--delay-ms", "300"]}])
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(BUDGET)
    with mesh.run() as m:
        n = 20
        responses = m.get_concurrently("caller", "backend", [f"/r{i}" for i in range(n)])
        assert {r.status for r in responses} == {503}
        retries = m.stat_sum("caller", RETRY_STATS)
        overflow = m.stat_sum("caller", r"^cluster\.backend.*\.upstream_rq_retry_overflow$")
        reached_app = m.stat_sum("down", r"^http\.inbound_\d+\.downstream_rq_total$")
        # Without a budget: 20 × (1 + 5) = 120 tries. The budget allows max(1, 10 % of active requests) = 2
        # retries in flight, so most wanted retries overflow instead.
        assert overflow >= n // 2, (retries, overflow)
        assert retries < n * 5 // 2, (retries, overflow)
        assert reached_app == n + retries
