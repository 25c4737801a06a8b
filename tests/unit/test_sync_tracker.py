"""Sync tracking: per proxy and type, only for the latest stream of a node; Prometheus exposition."""

from __future__ import annotations

import time

from xds_server.snapshot import CLUSTER, LISTENER
from xds_server.sync import SyncTracker


def test_a_newer_stream_of_the_same_node_replaces_the_older_one():
    s = SyncTracker()
    old = s.stream_opened("n", "sotw")
    new = s.stream_opened("n", "delta")
    s.sent("n", old, CLUSTER, "v-old")  # counted, but not recorded on the new stream's row
    s.stream_closed("n", old)
    assert s.proxies()["n"].kind == "delta"
    assert CLUSTER not in s.proxies()["n"].types
    assert s.pushes[CLUSTER] == 1
    s.stream_closed("n", new)
    assert not s.proxies()


def test_convergence_is_observed_once_per_version():
    s = SyncTracker()
    sid = s.stream_opened("n", "sotw")
    s.desired("n", sid, "v1")
    s.converged("n", sid, "v1", time.monotonic() - 0.2)
    s.converged("n", sid, "v1", time.monotonic() - 0.2)
    s.converged("n", sid, "v2", None)  # no set time: not a sample
    assert s.convergence.count == 1
    assert 0.2 <= s.convergence.sum < 1.0
    text = s.render_prometheus()
    assert 'meshwork_xds_convergence_seconds_bucket{le="0.25"} 1' in text
    assert 'meshwork_xds_convergence_seconds_bucket{le="0.1"} 0' in text
    assert "meshwork_xds_convergence_seconds_count 1" in text


def test_the_table_shows_sent_acked_and_nacked_versions():
    s = SyncTracker()
    sid = s.stream_opened("n", "sotw", peer="spiffe://mesh/ns/a/sa/b")
    s.desired("n", sid, "snap1")
    s.sent("n", sid, LISTENER, "l2")
    s.acked("n", sid, LISTENER, "l1")
    s.nacked("n", sid, LISTENER, "l2", "malformed IP address")
    row = s.table()["proxies"]["n"]
    lt = row["types"]["Listener"]
    assert (lt["sent_version"], lt["acked_version"], lt["last_nack"]["version"]) == ("l2", "l1", "l2")
    assert row["peer"] == "spiffe://mesh/ns/a/sa/b"
    assert row["in_sync"] is False
