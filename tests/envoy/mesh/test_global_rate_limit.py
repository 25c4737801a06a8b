"""Global rate limits on real sidecars against the real envoyproxy/ratelimit service and Redis: one budget shared by
every sidecar of the service, counted per header value, the configured failure mode when the service is down, and
a local limit combined with a global one on the same route."""

from __future__ import annotations

import contextlib
import socket
from collections import Counter
from pathlib import Path

import pytest

from mesh_operator.local.processes import pid_alive
from mesh_operator.testing.localmesh import LocalMeshBuilder, RunningMesh, eventually
from mesh_operator.testing.ratelimit import RateLimitStack, ratelimit_binary
from tests.envoy.mesh._tiers import require


@pytest.fixture(autouse=True, scope="module")
def _rate_limit_service() -> None:
    require(
        "envoyproxy/ratelimit + redis-server (scripts/ratelimit/build.sh)", ratelimit_binary, programs=("redis-server",)
    )


def _policy(global_: str, *, local: str = "") -> str:
    return f"""
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {{name: backend}}
spec:
  targetRef: {{name: backend}}
  loadBalancer: {{type: RoundRobin}}
  rules:
    - name: limited
      matches: [{{path: {{type: PathPrefix, value: /limited}}}}]
      rateLimit: {{{local}global: {global_}}}
"""


SHARED = "{descriptors: [{name: everyone, limit: {requests: 6, unit: hour}}]}"
PER_USER = "{descriptors: [{name: per-user, entries: [{header: x-user}], limit: {requests: 3, unit: hour}}]}"


def _mesh(mesh: LocalMeshBuilder, policy: str, rls: RateLimitStack, instances: int = 1) -> None:
    mesh.service("backend", instances=[{"name": f"backend-{i}"} for i in range(1, instances + 1)])
    mesh.client("caller", upstreams=["backend"])
    mesh.mesh(rateLimitService={"address": "127.0.0.1", "port": rls.grpc_port})
    mesh.policy(policy)


def _statuses(m: RunningMesh, n: int, headers: dict[str, str] | None = None) -> list[int]:
    return [m.get("caller", "backend", f"/limited/{i}", headers=headers).status for i in range(n)]


def test_three_sidecars_of_a_service_share_one_global_limit(mesh: LocalMeshBuilder) -> None:
    rls = RateLimitStack(mesh.state_dir)
    _mesh(mesh, _policy(SHARED), rls, instances=3)
    with mesh.run() as m, rls:
        responses = [m.get("caller", "backend", f"/limited/{i}") for i in range(18)]
        served = Counter(r.served_by for r in responses if r.status == 200)
        # 18 requests spread over three instances, each enforcing the limit in its own sidecar: the total
        # admitted is the one shared budget (6), not three times it, and more than one sidecar admitted some.
        assert sum(served.values()) == 6, [r.status for r in responses]
        assert len(served) >= 2, served
        assert sum(r.status == 429 for r in responses) == 12
        assert m.get("caller", "backend", "/other").status == 200, "other routes are not limited"


def test_a_header_descriptor_limits_each_value_separately(mesh: LocalMeshBuilder) -> None:
    rls = RateLimitStack(mesh.state_dir)
    _mesh(mesh, _policy(PER_USER), rls)
    with mesh.run() as m, rls:
        assert _statuses(m, 5, {"x-user": "alice"}) == [200] * 3 + [429] * 2
        assert _statuses(m, 4, {"x-user": "bob"}) == [200] * 3 + [429]
        assert _statuses(m, 3) == [200] * 3, "requests without the header are not counted"


@pytest.mark.parametrize(("failure_mode", "expected"), [("Allow", 200), ("Deny", 500)])
def test_with_the_service_stopped_the_configured_failure_mode_holds(
    mesh: LocalMeshBuilder, failure_mode: str, expected: int
) -> None:
    rls = RateLimitStack(mesh.state_dir)
    limit = "{descriptors: [{name: everyone, limit: {requests: 1, unit: hour}}], failureMode: " + failure_mode + "}"
    _mesh(mesh, _policy(limit), rls)
    with mesh.run() as m, rls:
        assert _statuses(m, 2) == [200, 429], "the service is up: the limit holds"
        rls.stop_service()
        assert _statuses(m, 3) == [expected] * 3


def test_a_local_and_a_global_limit_combine_on_one_route(mesh: LocalMeshBuilder) -> None:
    rls = RateLimitStack(mesh.state_dir)
    # Local: 3 tokens (answered 503); global: 2 requests (answered 429). The local filter runs first, so every
    # request spends a local token; only those it lets through reach the shared budget.
    local = "maxTokens: 3, tokensPerFill: 3, fillInterval: 1h, responseStatus: 503, "
    limit = "{descriptors: [{name: everyone, limit: {requests: 2, unit: hour}}]}"
    _mesh(mesh, _policy(limit, local=local), rls)
    with mesh.run() as m, rls:
        assert _statuses(m, 5) == [200, 200, 429, 503, 503]
        assert m.stat_sum("backend-1", r"meshwork_global_rate_limit.*over_limit$") == 1


def test_a_shadowed_global_limit_serves_every_request_and_counts_those_over_it(mesh: LocalMeshBuilder) -> None:
    rls = RateLimitStack(mesh.state_dir)
    limit = "{descriptors: [{name: everyone, limit: {requests: 2, unit: hour}}], mode: Shadow}"
    _mesh(mesh, _policy(limit), rls)
    with mesh.run() as m, rls:
        assert _statuses(m, 5) == [200] * 5
        assert m.stat_sum("backend-1", r"meshwork_global_rate_limit_shadow.*over_limit$") == 3


def _local_service_pids(state_dir: Path) -> dict[str, int]:
    return {
        name: int((state_dir / "ratelimit" / f"{name}.pid").read_text().split()[0]) for name in ("redis", "ratelimit")
    }


def _listens(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def test_local_mode_starts_the_rate_limit_service_and_redis_itself_and_stops_them_with_the_mesh(
    mesh: LocalMeshBuilder,
) -> None:
    # No rateLimitService in the Mesh and no service started by the test: local mode sees a policy with a global
    # limit, starts redis-server and envoyproxy/ratelimit on loopback ports of its own and points the sidecars
    # at them.
    mesh.service("backend", instances=[{"name": f"backend-{i}"} for i in range(1, 4)])
    mesh.client("caller", upstreams=["backend"])
    file = mesh.policy(_policy(SHARED))
    with mesh.run() as m:
        port = int((mesh.state_dir / "ratelimit" / "grpc-port").read_text())
        eventually(lambda: _listens(port), timeout=30)
        pids = _local_service_pids(mesh.state_dir)
        assert all(pid_alive(pid) for pid in pids.values()), pids
        clusters = m.sidecar_admin("backend-1", "/clusters")
        assert f"meshwork_ratelimit::127.0.0.1:{port}" in clusters, "the sidecars use the local service"

        responses = [m.get("caller", "backend", f"/limited/{i}") for i in range(18)]
        served = Counter(r.served_by for r in responses if r.status == 200)
        assert sum(served.values()) == 6, [r.status for r in responses]
        assert len(served) >= 2, served
        assert sum(r.status == 429 for r in responses) == 12

        # The policy loses its global limit: nothing needs the service any more, so local mode stops it.
        m.edit(file, _policy(SHARED).replace("rateLimit: {global: " + SHARED + "}", "timeouts: {request: 5s}"))
        eventually(lambda: not any(pid_alive(pid) for pid in pids.values()), timeout=30)
        assert m.get("caller", "backend", "/limited/again").status == 200

        m.edit(file, _policy(SHARED))
        eventually(lambda: _listens(port), timeout=30)
        pids = _local_service_pids(mesh.state_dir)
    # Stopping the mesh stops them too.
    assert not any(pid_alive(pid) for pid in pids.values()), pids


def _shadow_policy(service: str, requests: int, *, extra_rule: str = "") -> str:
    return f"""
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {{name: {service}}}
spec:
  targetRef: {{name: {service}}}
  rules:
    - name: limited
      matches: [{{path: {{type: PathPrefix, value: /limited}}}}]
      rateLimit:
        global: {{descriptors: [{{name: everyone, limit: {{requests: {requests}, unit: hour}}}}], mode: Shadow}}
{extra_rule}"""


# An enforced global limit (1 request, answered 429 with x-envoy-ratelimited) beside the shadowed ones, and an
# enforced local limit (1 token) combined with a shadowed global one.
ENFORCED_RULES = """    - name: enforced
      matches: [{path: {type: PathPrefix, value: /enforced}}]
      rateLimit: {global: {descriptors: [{name: everyone, limit: {requests: 1, unit: hour}}]}}
    - name: local
      matches: [{path: {type: PathPrefix, value: /local}}]
      rateLimit:
        maxTokens: 1
        tokensPerFill: 1
        fillInterval: 1h
        global: {descriptors: [{name: everyone, limit: {requests: 10, unit: hour}}], mode: Shadow}
"""


def _by_index(entries: list[dict[str, object]], field: str) -> list[object]:
    return [e[field] for e in sorted(entries, key=lambda e: int(str(e["path"]).rsplit("/", 1)[1]))]


def test_shadowed_global_limits_of_two_policies_are_each_named_in_their_stat_and_on_exactly_their_over_limit_requests(
    mesh: LocalMeshBuilder,
) -> None:
    rls = RateLimitStack(mesh.state_dir)
    mesh.service("backend")
    mesh.service("ledger")
    mesh.client("caller", upstreams=["backend", "ledger"])
    mesh.mesh(rateLimitService={"address": "127.0.0.1", "port": rls.grpc_port})
    mesh.policy(_shadow_policy("backend", 2, extra_rule=ENFORCED_RULES))
    mesh.policy(_shadow_policy("ledger", 3))
    app_header = {"x-echo-set-header": "x-envoy-ratelimited=from-the-app"}
    with mesh.run() as m, rls:
        backend = [m.get("caller", "backend", f"/limited/{i}") for i in range(5)]
        # The app sets x-envoy-ratelimited itself on an over-limit request: the caller gets the app's header.
        backend.append(m.get("caller", "backend", "/limited/5", headers=app_header))
        ledger = [m.get("caller", "ledger", f"/limited/{i}") for i in range(6)]
        assert [r.status for r in backend + ledger] == [200] * 12, "Shadow never refuses"
        # A shadow is invisible to the caller: no x-envoy-ratelimited on the over-limit responses it served.
        assert [r.headers.get("x-envoy-ratelimited") for r in backend] == [None] * 5 + ["from-the-app"]
        assert [r.headers.get("x-envoy-ratelimited") for r in ledger] == [None] * 6
        free = m.get("caller", "backend", "/free/0", headers=app_header)
        assert free.status == 200 and free.headers.get("x-envoy-ratelimited") == "from-the-app"
        # The enforced global limit still answers 429 with its x-envoy-ratelimited; the enforced local one, 429.
        enforced = [m.get("caller", "backend", f"/enforced/{i}") for i in range(2)]
        assert [r.status for r in enforced] == [200, 429]
        assert enforced[1].headers.get("x-envoy-ratelimited") == "true", enforced[1].headers
        assert [m.get("caller", "backend", f"/local/{i}").status for i in range(2)] == [200, 429]

        # Stats: one counter per policy, counting exactly that policy's over-limit requests.
        def over(workload: str, policy: str) -> int:
            return m.stat_sum(workload, rf"\.ratelimit\.meshwork_global_rate_limit_shadow_{policy}\.over_limit$")

        assert over("backend-1", "trafficpolicy_default_backend") == 4, m.stats("backend-1", "global_rate_limit")
        assert over("ledger-1", "trafficpolicy_default_ledger") == 3
        assert (
            over("backend-1", "trafficpolicy_default_ledger") == over("ledger-1", "trafficpolicy_default_backend") == 0
        )

        # Access logs: the policy on exactly the requests over its limit, nothing on the others.
        b = eventually(lambda: (e := m.access_log_entries("backend-1", "/limited/")) and len(e) == 6 and e)
        assert _by_index(b, "global_rate_limit_shadow") == ["-"] * 2 + ["TrafficPolicy/default/backend"] * 4
        led = eventually(lambda: (e := m.access_log_entries("ledger-1", "/limited/")) and len(e) == 6 and e)
        assert _by_index(led, "global_rate_limit_shadow") == ["-"] * 3 + ["TrafficPolicy/default/ledger"] * 3
        rest = eventually(lambda: (e := m.access_log_entries("backend-1", "/")) and len(e) >= 11 and e)
        others = {
            str(e["path"]): e["global_rate_limit_shadow"] for e in rest if not str(e["path"]).startswith("/limited/")
        }
        assert others == dict.fromkeys(("/free/0", "/enforced/0", "/enforced/1", "/local/0", "/local/1"), "-"), others
