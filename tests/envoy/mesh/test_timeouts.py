"""Request timeouts: a slow destination is cut off with 504 after about the configured time."""

from __future__ import annotations

from mesh_operator.testing.localmesh import LocalMeshBuilder

TIMEOUTS = """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: backend}
spec:
  targetRef: {name: backend}
  timeouts: {request: 1s}
  rules:
    - name: impatient
      matches: [{path: {type: PathPrefix, value: /impatient}}]
      timeouts: {request: 300ms}
"""


def test_a_slow_backend_answers_504_after_about_the_configured_request_timeout(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend", instances=[{"name": "slow", "args": ["--delay-ms", "3000"]}])
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(TIMEOUTS)
    with mesh.run() as m:
        # The rule's own timeout (300 ms) wins over the service-wide one (1 s), which covers every other path.
        # Bounds: never before the timeout; at most 400 ms late (a busy 2-core machine, and the first request's
        # mTLS handshake), far below the backend's 3 s.
        for path, timeout in [("/impatient", 0.3), ("/anything", 1.0), ("/impatient/again", 0.3)]:
            resp = m.get("caller", "backend", path)
            assert resp.status == 504, (path, resp)
            assert b"upstream request timeout" in resp.body
            assert timeout - 0.01 <= resp.elapsed <= timeout + 0.4, (path, resp.elapsed)
        assert m.stat_sum("caller", r"^cluster\.backend.*\.upstream_rq_timeout$") == 3
