"""Killing the control plane (SIGKILL) under traffic: no request fails, Envoy keeps its config untouched while the
control plane is away, and after a restart every proxy reconnects and converges without ever seeing a partial
snapshot (ANCHORS reliability tests 1 and 2)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from mesh_operator.testing.localmesh import LocalMeshBuilder, RunningMesh, eventually

pytestmark = pytest.mark.timeout(120)

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
    - backends: [{subset: v1, weight: 80}, {subset: v2, weight: 20}]
"""

SIDECARS = ("caller", "backend-v1", "backend-v2")
#: Envoy gauges that drop if a proxy is ever sent a snapshot missing listeners or clusters (SotW: absent = delete).
GAUGES = ("listener_manager.total_listeners_active", "cluster_manager.active_clusters")


class Traffic(threading.Thread):
    """Requests through the caller's sidecar, back to back, until stopped; records every failure."""

    def __init__(self, m: RunningMesh) -> None:
        super().__init__(daemon=True)
        self.m = m
        self.ok = 0
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stopping.is_set():
            i += 1
            try:
                r = self.m.get("caller", "backend", f"/t{i}", headers={"x-canary": "yes"} if i % 5 == 0 else {})
                if r.status == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"{r.status} {r.body[:200]!r}")
            except OSError as e:
                self.failures.append(repr(e))
            time.sleep(0.005)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


class GaugeWatch(threading.Thread):
    """Samples each sidecar's listener/cluster gauges every 50 ms; keeps every distinct value seen."""

    def __init__(self, m: RunningMesh) -> None:
        super().__init__(daemon=True)
        self.m = m
        self.seen: dict[tuple[str, str], set[int]] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for wl in SIDECARS:
                stats = self.m.stats(wl, "^(listener_manager.total_listeners_active|cluster_manager.active_clusters)$")
                for g in GAUGES:
                    self.seen.setdefault((wl, g), set()).add(stats[g])
            time.sleep(0.05)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


def config(m: RunningMesh, workload: str) -> dict[str, Any]:
    """The sidecar's ``/config_dump`` without timestamps (and secrets only by name: certificates are reissued)."""

    def strip(doc: Any) -> Any:
        if isinstance(doc, dict):
            return {k: strip(v) for k, v in doc.items() if k != "last_updated"}
        if isinstance(doc, list):
            return [strip(v) for v in doc]
        return doc

    dump = json.loads(m.sidecar_admin(workload, "/config_dump"))
    out = {}
    for section in dump["configs"]:
        kind = section["@type"].rsplit(".", 1)[-1]
        if kind == "SecretsConfigDump":
            out[kind] = sorted(s["name"] for s in section.get("dynamic_active_secrets", []))
        else:
            out[kind] = strip(section)
    return out


def type_versions(m: RunningMesh) -> dict[str, dict[str, str]]:
    return {
        node: {t: s["acked_version"] for t, s in p["types"].items() if t != "Secret"} for node, p in m.sync().items()
    }


def connected(m: RunningMesh, workload: str) -> int:
    return m.stats(workload, "^control_plane.connected_state$")["control_plane.connected_state"]


def test_killing_and_restarting_the_control_plane_fails_no_request_and_never_changes_envoys_config(
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
        before = {wl: config(m, wl) for wl in SIDECARS}
        rejected_before = {wl: m.stats(wl, r"update_rejected$") for wl in SIDECARS}
        versions_before = type_versions(m)
        traffic, gauges = Traffic(m), GaugeWatch(m)
        traffic.start()
        gauges.start()
        try:
            time.sleep(0.5)
            m.kill_control_plane()
            eventually(lambda: all(connected(m, wl) == 0 for wl in SIDECARS), timeout=10)
            served_before_outage = traffic.ok
            time.sleep(3.0)  # serving with no control plane
            served_during_outage = traffic.ok - served_before_outage
            away = {wl: config(m, wl) for wl in SIDECARS}

            restarted_at = time.time()
            m.restart_control_plane()  # returns once every proxy has ACKed the restarted control plane's snapshot
            eventually(lambda: all(connected(m, wl) == 1 for wl in SIDECARS), timeout=10)
            time.sleep(1.0)  # traffic after the restart, too
        finally:
            traffic.stop()
            gauges.stop()

        assert traffic.failures == []
        # Requests really flowed while the control plane was gone (how many depends on the machine's load).
        assert served_during_outage >= 10
        assert away == before  # nothing changed while the control plane was away

        sync = m.sync()
        assert sorted(sync) == sorted(m.node_ids())
        assert all(p["in_sync"] and p["connected_since"] >= restarted_at for p in sync.values())  # new streams
        # Content-hash versions: the same input gives the same resources (certificates are reissued: not Secrets).
        assert type_versions(m) == versions_before

        after = {wl: config(m, wl) for wl in SIDECARS}
        assert after == before
        for wl in SIDECARS:
            assert m.stats(wl, r"update_rejected$") == rejected_before[wl]
            for g in GAUGES:
                assert len(gauges.seen[(wl, g)]) == 1, (wl, g, gauges.seen[(wl, g)])  # never dropped, not once
