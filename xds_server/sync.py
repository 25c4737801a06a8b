"""Sync tracking: what every connected proxy was sent, ACKed and rejected, and the counters behind ``/metrics``.

The ADS server reports into a :class:`SyncTracker`; the admin server reads it (``/debug/syncz``, ``/metrics``);
status writers read :meth:`SyncTracker.proxies` for delivery receipts (who ACKed which snapshot version, who
NACKed and why). Plain data, no I/O.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

#: Convergence histogram buckets, in seconds.
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def short_type(type_url: str) -> str:
    """``type.googleapis.com/envoy.config.cluster.v3.Cluster`` -> ``Cluster``."""
    return type_url.rsplit(".", 1)[-1]


@dataclass
class Nack:
    version: str
    error: str
    at: float  # wall clock (time.time())


@dataclass
class TypeSync:
    sent_version: str = ""
    sent_at: float | None = None
    acked_version: str = ""
    acked_at: float | None = None
    last_nack: Nack | None = None
    pushes: int = 0
    nacks: int = 0

    @property
    def rejecting(self) -> Nack | None:
        """The NACK of the version last sent, while the proxy has not ACKed it: the proxy rejects current config."""
        n = self.last_nack
        return n if n is not None and n.version == self.sent_version != self.acked_version else None


@dataclass
class ProxySync:
    node_id: str
    stream_id: int
    kind: str  # "sotw" | "delta"
    peer: str
    connected_since: float  # wall clock
    #: The snapshot version the cache holds for the node (what it should converge to).
    desired_version: str = ""
    #: The last snapshot version whose every subscribed type the proxy has ACKed.
    acked_version: str = ""
    acked_at: float | None = None
    types: dict[str, TypeSync] = field(default_factory=dict)

    def type(self, type_url: str) -> TypeSync:
        t = self.types.get(type_url)
        if t is None:
            t = self.types[type_url] = TypeSync()
        return t

    @property
    def in_sync(self) -> bool:
        return bool(self.desired_version) and self.desired_version == self.acked_version


class Histogram:
    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.sum += value
        self.count += 1
        for i, b in enumerate(self.buckets):
            if value <= b:
                self.counts[i] += 1


class SyncTracker:
    """Per-proxy, per-type sync state plus Prometheus counters. Only the latest stream of a node is tracked."""

    def __init__(self) -> None:
        self._proxies: dict[str, ProxySync] = {}
        self._ids = itertools.count(1)
        self.pushes: dict[str, int] = {}
        self.nacks: dict[str, int] = {}
        self.acks: dict[str, int] = {}
        self.streams_total: dict[str, int] = {}
        self.convergence = Histogram()

    # ------------------------------------------------------------------ events from the server

    def stream_opened(self, node_id: str, kind: str, peer: str = "") -> int:
        sid = next(self._ids)
        self._proxies[node_id] = ProxySync(node_id, sid, kind, peer, time.time())
        self.streams_total[kind] = self.streams_total.get(kind, 0) + 1
        return sid

    def stream_closed(self, node_id: str, stream_id: int) -> None:
        p = self._proxies.get(node_id)
        if p is not None and p.stream_id == stream_id:
            del self._proxies[node_id]

    def _get(self, node_id: str, stream_id: int) -> ProxySync | None:
        p = self._proxies.get(node_id)
        return p if p is not None and p.stream_id == stream_id else None

    def sent(self, node_id: str, stream_id: int, type_url: str, version: str) -> None:
        self.pushes[type_url] = self.pushes.get(type_url, 0) + 1
        p = self._get(node_id, stream_id)
        if p is not None:
            t = p.type(type_url)
            t.sent_version, t.sent_at = version, time.time()
            t.pushes += 1

    def acked(self, node_id: str, stream_id: int, type_url: str, version: str) -> None:
        self.acks[type_url] = self.acks.get(type_url, 0) + 1
        p = self._get(node_id, stream_id)
        if p is not None:
            t = p.type(type_url)
            t.acked_version, t.acked_at = version, time.time()

    def nacked(self, node_id: str, stream_id: int, type_url: str, version: str, error: str) -> None:
        self.nacks[type_url] = self.nacks.get(type_url, 0) + 1
        p = self._get(node_id, stream_id)
        if p is not None:
            t = p.type(type_url)
            t.last_nack = Nack(version, error, time.time())
            t.nacks += 1

    def desired(self, node_id: str, stream_id: int, snapshot_version: str) -> None:
        p = self._get(node_id, stream_id)
        if p is not None:
            p.desired_version = snapshot_version

    def converged(self, node_id: str, stream_id: int, snapshot_version: str, set_at: float | None) -> None:
        """The proxy ACKed everything of ``snapshot_version``; ``set_at`` (monotonic) feeds the histogram."""
        p = self._get(node_id, stream_id)
        if p is None or p.acked_version == snapshot_version:
            return
        p.acked_version, p.acked_at = snapshot_version, time.time()
        if set_at is not None:
            self.convergence.observe(max(0.0, time.monotonic() - set_at))

    # ------------------------------------------------------------------ readers

    def proxies(self) -> Mapping[str, ProxySync]:
        return self._proxies

    def table(self) -> dict[str, Any]:
        """JSON-able sync table (``/debug/syncz``)."""
        out: dict[str, Any] = {}
        for node_id, p in sorted(self._proxies.items()):
            d = asdict(p)
            d["in_sync"] = p.in_sync
            d["types"] = {short_type(k): v for k, v in sorted(d["types"].items())}
            for t, ts in p.types.items():
                d["types"][short_type(t)]["rejecting"] = ts.rejecting is not None
            out[node_id] = d
        return {"proxies": out, "connected": len(self._proxies)}

    def render_prometheus(self) -> str:
        lines: list[str] = []

        def counter(name: str, help_: str, values: Mapping[str, int], label: str = "type") -> None:
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} counter")
            for k, v in sorted(values.items()):
                key = short_type(k) if label == "type" else k
                lines.append(f'{name}{{{label}="{key}"}} {v}')

        counter("meshwork_xds_pushes_total", "xDS responses sent, by resource type.", self.pushes)
        counter("meshwork_xds_acks_total", "xDS ACKs received, by resource type.", self.acks)
        counter("meshwork_xds_nacks_total", "xDS NACKs received, by resource type.", self.nacks)
        counter("meshwork_xds_streams_total", "ADS streams opened, by protocol.", self.streams_total, "kind")
        lines.append("# HELP meshwork_xds_connected_proxies Proxies with an open ADS stream.")
        lines.append("# TYPE meshwork_xds_connected_proxies gauge")
        lines.append(f"meshwork_xds_connected_proxies {len(self._proxies)}")
        in_sync = sum(1 for p in self._proxies.values() if p.in_sync)
        lines.append("# HELP meshwork_xds_proxies_in_sync Connected proxies that ACKed their current snapshot.")
        lines.append("# TYPE meshwork_xds_proxies_in_sync gauge")
        lines.append(f"meshwork_xds_proxies_in_sync {in_sync}")
        h = self.convergence
        name = "meshwork_xds_convergence_seconds"
        lines.append(f"# HELP {name} Time from a snapshot being set to the proxy ACKing all of it.")
        lines.append(f"# TYPE {name} histogram")
        for b, c in zip(h.buckets, h.counts, strict=True):
            lines.append(f'{name}_bucket{{le="{b}"}} {c}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {h.count}')
        lines.append(f"{name}_sum {h.sum}")
        lines.append(f"{name}_count {h.count}")
        return "\n".join(lines) + "\n"
