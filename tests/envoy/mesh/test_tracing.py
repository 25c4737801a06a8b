"""Tracing with OpenTelemetry on real sidecars, exporting to a real OpenTelemetry Collector (OTLP/gRPC receiver,
file exporter): a three-hop call is one trace with correct parent links and service names, sampling 0 % sends
nothing while a per-policy override traces its service, and an incoming ``traceparent`` is continued. Spans name
their route (``meshwork.route``) and the policies that made it (``meshwork.policies``)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mesh_operator.testing.localmesh import LocalMeshBuilder
from mesh_operator.testing.otel import Collector, Span, collector_binary
from tests.envoy.mesh._tiers import require


@pytest.fixture(autouse=True, scope="module")
def _collector() -> None:
    require("the OpenTelemetry Collector (scripts/otelcol/build.sh)", collector_binary)


BACKEND_TRACED = """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: backend}
spec:
  targetRef: {name: backend}
  tracing: {samplingPercent: 100}
"""


def _mesh(mesh: LocalMeshBuilder, collector: Collector, sampling: float) -> None:
    mesh.service("backend")
    mesh.service(
        "frontend",
        upstreams=["backend"],
        instances=[{"name": "frontend-1", "args": ["--upstream", "{upstream:backend}"]}],
    )
    mesh.client("loadgen", upstreams=["frontend", "backend"])
    mesh.mesh(
        tracing={
            "collector": {"address": "127.0.0.1", "port": collector.port},
            "samplingPercent": sampling,
            "customTags": [{"name": "mesh", "literal": "test"}, {"name": "user", "header": "x-user"}],
        }
    )


def _chain(spans: list[Span]) -> list[Span]:
    """The spans of one trace ordered root first, each the parent of the next (fails if they are not a chain)."""
    by_parent = {s.parent_span_id: s for s in spans}
    assert len(by_parent) == len(spans), "one child per span"
    roots = [s for s in spans if s.parent_span_id not in {t.span_id for t in spans}]
    assert len(roots) == 1, roots
    chain = [roots[0]]
    while chain[-1].span_id in by_parent:
        chain.append(by_parent[chain[-1].span_id])
    assert len(chain) == len(spans), chain
    return chain


def test_a_three_hop_call_is_one_trace_with_parent_links_and_service_names(
    mesh: LocalMeshBuilder, tmp_path: Path
) -> None:
    with Collector(tmp_path) as collector:
        _mesh(mesh, collector, 100)
        mesh.policy(BACKEND_TRACED)
        with mesh.run() as m:
            r = m.get("loadgen", "frontend", "/call/hello", headers={"x-user": "alice"})
            assert r.status == 200 and r.json()["upstream"]["service"] == "backend-1"
            spans = collector.wait_spans(4)
            time.sleep(1)
            spans = collector.spans()
    assert len({s.trace_id for s in spans}) == 1, spans
    chain = _chain(spans)
    # loadgen's sidecar (egress) -> frontend's inbound -> frontend's outbound (the app propagated traceparent)
    # -> backend's inbound.
    assert [s.service for s in chain] == ["loadgen.default", "frontend.default", "frontend.default", "backend.default"]
    assert chain[0].parent_span_id == ""
    assert all(s.attributes.get("mesh") == "test" for s in chain)
    assert chain[0].attributes.get("user") == "alice"
    assert chain[0].attributes.get("node_id") == "default/loadgen"
    # Route and policy attributes: the hop to backend took a route its TrafficPolicy made, and the span names
    # both; the hop to frontend (no policy) names its route only.
    assert chain[2].attributes["meshwork.policies"].startswith("TrafficPolicy/default/backend@"), chain[2]
    assert chain[2].attributes["meshwork.route"].startswith("backend.default"), chain[2]
    assert "meshwork.policies" not in chain[0].attributes, chain[0]
    assert chain[0].attributes["meshwork.route"].startswith("frontend.default"), chain[0]


def test_sampling_zero_sends_no_trace_and_a_policy_override_traces_its_service(
    mesh: LocalMeshBuilder, tmp_path: Path
) -> None:
    with Collector(tmp_path) as collector:
        _mesh(mesh, collector, 0)
        mesh.policy(BACKEND_TRACED)
        with mesh.run() as m:
            for i in range(5):
                assert m.get("loadgen", "frontend", f"/untraced/{i}").status == 200
            assert m.get("loadgen", "backend", "/traced").status == 200
            spans = collector.wait_spans(2)
            time.sleep(6)  # longer than Envoy's 5 s span flush: anything else sampled would have arrived
            spans = collector.spans()
    # Only the call to backend (100 % by its TrafficPolicy) is traced: loadgen's egress and backend's ingress.
    assert len({s.trace_id for s in spans}) == 1, spans
    assert [s.service for s in _chain(spans)] == ["loadgen.default", "backend.default"]
    assert not any("untraced" in str(s.attributes.get("http.url", "")) for s in spans)


def test_an_incoming_traceparent_is_continued(mesh: LocalMeshBuilder, tmp_path: Path) -> None:
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with Collector(tmp_path) as collector:
        _mesh(mesh, collector, 100)
        with mesh.run() as m:
            headers = {"traceparent": f"00-{trace_id}-{parent}-01"}
            assert m.get("loadgen", "backend", "/continued", headers=headers).status == 200
            spans = collector.wait_spans(2)
    assert {s.trace_id for s in spans} == {trace_id}
    chain = _chain(spans)
    assert chain[0].parent_span_id == parent, "the first sidecar's span is a child of the caller's span"
