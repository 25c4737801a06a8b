"""Access logs: one line per request, in the mesh's configured format (JSON or text), naming what served it and
which policy shaped the route."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from mesh_operator.testing.localmesh import LocalMeshBuilder, RunningMesh, eventually

pytestmark = pytest.mark.timeout(90)

POLICY = """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: backend}
spec:
  targetRef: {name: backend}
  subsets: [{name: v1, labels: {version: v1}}]
  rules:
    - name: broken
      matches: [{path: {type: PathPrefix, value: /broken}}]
      fault: {abort: {httpStatus: 503, percent: 100}}
    - name: main
      backends: [{subset: v1, weight: 100}]
"""

#: ``key=value`` pairs of a text line (none of the values we check contains a space).
TEXT_PAIR = re.compile(r"(\w+)=(\S*)")


def _mesh(mesh: LocalMeshBuilder, fmt: str) -> None:
    mesh.service("backend", instances=[{"name": "backend-v1", "labels": {"version": "v1"}}])
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(POLICY)
    mesh.mesh(accessLog={"format": fmt})


def _lines_for(m: RunningMesh, paths: list[str], parse: Any) -> dict[str, list[dict[str, Any]]]:
    """The caller's access-log entries by request path, once every path has shown up (Envoy flushes ~1 s)."""

    def collect() -> dict[str, list[dict[str, Any]]]:
        entries = [parse(line) for line in m.access_log("caller")]
        by_path = {p: [e for e in entries if e.get("path") == p] for p in paths}
        return by_path if all(by_path.values()) else {}

    result: dict[str, list[dict[str, Any]]] = eventually(collect, timeout=10)
    return result


def _json_or_empty(line: str) -> dict[str, Any]:
    """A JSON line; a line still being written (no closing brace yet) counts as nothing."""
    try:
        doc: dict[str, Any] = json.loads(line)
    except ValueError:
        return {}
    return doc


def _send(m: RunningMesh, tag: str) -> tuple[list[str], str]:
    ok = [f"/{tag}/ok-{i}" for i in range(5)]
    for p in ok:
        assert m.get("caller", "backend", p).status == 200
    broken = f"/broken/{tag}"
    assert m.get("caller", "backend", broken).status == 503
    return ok, broken


def _assert_facts(m: RunningMesh, entry: dict[str, Any], status: str, served: bool) -> None:
    assert str(entry["status"]) == status
    assert int(entry["duration_ms"]) >= 0
    assert "TrafficPolicy/default/backend@" in entry["policies"]  # provenance: the policy that made the route
    if served:
        assert entry["upstream_cluster"] == "backend.default|80|v1"
        assert entry["upstream_host"] == f"127.0.0.1:{m.builder.workloads['backend-v1'].inbound_port}"
        assert entry["route"] == "backend.default/main"
    else:  # the fault answered: no upstream was involved
        assert entry["route"] == "backend.default/broken"
        assert entry["response_flags"] == "FI"


def test_json_access_logs_have_one_parsed_line_per_request_with_status_timing_upstream_route_and_policy(
    mesh: LocalMeshBuilder,
) -> None:
    _mesh(mesh, "JSON")
    with mesh.run() as m:
        ok, broken = _send(m, "json")
        by_path = _lines_for(m, [*ok, broken], _json_or_empty)
        assert all(len(v) == 1 for v in by_path.values()), by_path
        for p in ok:
            _assert_facts(m, by_path[p][0], "200", served=True)
            assert isinstance(by_path[p][0]["status"], int)  # typed JSON, not strings
            assert isinstance(by_path[p][0]["duration_ms"], int)
        _assert_facts(m, by_path[broken][0], "503", served=False)


def test_text_access_logs_have_one_line_per_request_with_the_same_facts(mesh: LocalMeshBuilder) -> None:
    _mesh(mesh, "Text")

    def parse(line: str) -> dict[str, str]:
        return dict(TEXT_PAIR.findall(line))

    with mesh.run() as m:
        ok, broken = _send(m, "text")
        by_path = _lines_for(m, [*ok, broken], parse)
        assert all(len(v) == 1 for v in by_path.values()), by_path
        for p in ok:
            _assert_facts(m, by_path[p][0], "200", served=True)
        _assert_facts(m, by_path[broken][0], "503", served=False)
        assert not any(line.lstrip().startswith("{") for line in m.access_log("caller"))
