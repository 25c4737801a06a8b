"""The ADS server (grpclib): state-of-the-world and delta, from cached resource bytes.

One :class:`_Session` per gRPC stream. A reader task decodes requests into a queue; the session's own loop (the
handler) processes them, watches the cache for the node's snapshot and pushes responses. Responses are written by
:mod:`xds_server.wire` around the cached bodies, never re-serialized.

Protocol rules implemented here:

- The first message of a stream must carry the node; later ones may omit it (ignored if present).
- SotW: a request whose nonce is not the latest one sent for its type is stale and ignored. With the latest nonce
  it ACKs (no ``error_detail``) or NACKs (``error_detail``: the version stays what the proxy had). An empty nonce is
  a (re)subscription: the server answers with the current state, recording ``version_info`` as what the proxy has.
- Delta: subscription changes always apply; the ACK/NACK part of a stale nonce is ignored; ``initial_resource_versions``
  seeds what the proxy has so only differences are sent.
- Wildcard: CDS/LDS with no names (or ``*``); EDS/RDS/SDS by name.
- Nothing is sent to a node before the cache holds a snapshot for it (and the cache's ready gate is open).
- Make-before-break: types are pushed in :data:`TYPE_ORDER` (CDS, EDS, SDS, LDS, RDS). Listener and route updates
  wait (at most :attr:`AdsServer.max_defer` seconds) until the proxy has answered the cluster and endpoint pushes
  and subscribed to the endpoints of every new cluster the snapshot has endpoints for. Clusters, endpoints and
  secrets a snapshot removes are kept in responses until the proxy has answered the listener and route updates,
  then removed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import grpclib.const
import grpclib.server
from grpclib.config import Configuration
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from xds_server import fastsend, wire
from xds_server.ads_transport import (
    DEFAULT_MAX_REQUEST_BYTES,
    DELTA_PATH,
    SOTW_PATH,
    DeltaRequest,
    SotwRequest,
    XdsCodec,
    peer_identity,
    recv_bounded,
    server_config,
)
from xds_server.cache import CacheEntry, SnapshotSource
from xds_server.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, TYPE_ORDER, CachedResource
from xds_server.sync import SyncTracker
from xds_server.typestate import TypeState as _TypeState

log = logging.getLogger(__name__)

WILDCARD_TYPES = frozenset({CLUSTER, LISTENER})
_REMOVAL_HELD = (CLUSTER, ENDPOINT, SECRET)
_REFERRERS = (LISTENER, ROUTE)

#: ``authorize(node_id, peer_identity, type_url, resource_name) -> bool``; ``peer_identity`` is the URI SAN of the
#: client certificate on the xDS connection (None without TLS). A resource it refuses is treated as nonexistent.
Authorize = Callable[[str, str | None, str, str], bool]


class AdsServer:
    """The Aggregated Discovery Service: add it to a grpclib ``Server`` built with :class:`XdsCodec`
    (or use :func:`make_server`)."""

    def __init__(
        self,
        cache: SnapshotSource,
        sync: SyncTracker | None = None,
        *,
        authorize: Authorize | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_defer: float = 2.0,
    ) -> None:
        self.cache = cache
        self.sync = sync if sync is not None else SyncTracker()
        self.authorize = authorize
        self.max_request_bytes = max_request_bytes
        self.max_defer = max_defer
        self._nonces = itertools.count(1)

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        ss = grpclib.const.Cardinality.STREAM_STREAM
        return {
            SOTW_PATH: grpclib.const.Handler(self._handle_sotw, ss, SotwRequest, bytes),
            DELTA_PATH: grpclib.const.Handler(self._handle_delta, ss, DeltaRequest, bytes),
        }

    def next_nonce(self) -> str:
        return str(next(self._nonces))

    async def _handle_sotw(self, stream: grpclib.server.Stream[Any, Any]) -> None:
        await _Session(self, stream, delta=False).run()

    async def _handle_delta(self, stream: grpclib.server.Stream[Any, Any]) -> None:
        await _Session(self, stream, delta=True).run()


def make_server(ads: AdsServer, config: Configuration | None = None) -> grpclib.server.Server:
    return grpclib.server.Server([ads], codec=XdsCodec(), config=config or server_config())


class _Session:
    def __init__(self, server: AdsServer, stream: grpclib.server.Stream[Any, Any], *, delta: bool) -> None:
        self.server = server
        self.stream = stream
        self.delta = delta
        self.decode = wire.decode_delta_request if delta else wire.decode_discovery_request
        self.peer = peer_identity(stream)
        self.node_id = ""
        self.stream_id = 0
        self.opened_at = time.monotonic()
        self.states: dict[str, _TypeState] = {}
        self.requests: deque[wire.Request] = deque()
        self.wake = asyncio.Event()
        self.closed = False
        self.error: BaseException | None = None
        self.entry: CacheEntry | None = None
        self.latest: CacheEntry | None = None
        self.dirty: set[str] = set()
        self.converged_version = ""
        self.defer_since: float | None = None

    # ------------------------------------------------------------------ tasks

    async def run(self) -> None:
        reader = asyncio.create_task(self._read())
        watcher: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        try:
            while True:
                if self.defer_since is None:
                    await self.wake.wait()
                else:  # wake up at the end of the deferral at the latest (a timer: no task per wait)
                    timer = loop.call_at(self.defer_since + self.server.max_defer, self.wake.set)
                    try:
                        await self.wake.wait()
                    finally:
                        timer.cancel()
                self.wake.clear()
                if self.error is not None:
                    raise self.error
                while self.requests:
                    self._on_request(self.requests.popleft())
                    if watcher is None and self.node_id:
                        watcher = asyncio.create_task(self._watch())
                if self.closed:
                    return
                if self.latest is not None and self.latest is not self.entry:
                    self.entry = self.latest
                    self.server.sync.desired(self.node_id, self.stream_id, self.entry.version)
                    self.dirty.update(self.states)
                if self.entry is not None and self.dirty:
                    await self._round(self.entry)
                elif not self.dirty:
                    self.defer_since = None
        finally:
            reader.cancel()
            if watcher is not None:
                watcher.cancel()
            if self.stream_id:
                self.server.sync.stream_closed(self.node_id, self.stream_id)

    async def _read(self) -> None:
        try:
            while True:
                data = await recv_bounded(self.stream, self.server.max_request_bytes)
                if data is None:
                    self.closed = True
                    break
                try:
                    self.requests.append(self.decode(data))
                except wire.WireError as e:
                    raise GRPCError(Status.INVALID_ARGUMENT, f"malformed request: {e}") from e
                self.wake.set()
        except asyncio.CancelledError:
            raise
        except StreamTerminatedError:
            self.closed = True  # the proxy went away
        except BaseException as e:
            self.error = e
        finally:
            self.wake.set()

    async def _watch(self) -> None:
        cache = self.server.cache
        seen: CacheEntry | None = None
        while True:
            seen = await cache.wait_for_change(self.node_id, seen)
            self.latest = seen
            self.wake.set()

    # ------------------------------------------------------------------ requests

    def _on_request(self, req: wire.Request) -> None:
        sync = self.server.sync
        if not self.node_id:
            if req.node is None or not req.node.id:
                raise GRPCError(Status.INVALID_ARGUMENT, "the first request of a stream must carry node.id")
            self.node_id = req.node.id
            self.stream_id = sync.stream_opened(self.node_id, "delta" if self.delta else "sotw", self.peer or "")
            self.latest = self.server.cache.get(self.node_id)
            if self.latest is not None:
                self.entry = self.latest
                sync.desired(self.node_id, self.stream_id, self.latest.version)
        t = req.type_url
        if not t:
            return
        st = self.states.get(t)
        if st is None:
            st = self.states[t] = _TypeState()
        if self.delta:
            self._on_delta(t, st, req)
        else:
            self._on_sotw(t, st, req)

    def _ack_or_nack(self, t: str, st: _TypeState, req: wire.Request, version: str) -> None:
        sync = self.server.sync
        st.pending = False
        if req.is_nack:
            sync.nacked(self.node_id, self.stream_id, t, st.sent_version, req.error)
            log.info("NACK from %s for %s version %s: %s", self.node_id, t, st.sent_version, req.error)
        else:
            st.acked_version = version
            sync.acked(self.node_id, self.stream_id, t, version)
        if t in (CLUSTER, ENDPOINT) and self.defer_since is not None:
            self.dirty.update(_REFERRERS)
        if t in _REFERRERS:
            # The listener/route update of this round is settled: held-back removals may go now.
            for h in _REMOVAL_HELD:
                hs = self.states.get(h)
                if hs is not None and hs.holding:
                    self.dirty.add(h)

    def _on_sotw(self, t: str, st: _TypeState, req: wire.Request) -> None:
        if req.response_nonce and st.nonce:
            if req.response_nonce != st.nonce:
                return  # stale: an answer to a response that has been superseded
            self._ack_or_nack(t, st, req, st.sent_version if not req.is_nack else req.version_info)
        else:
            # A new subscription (or a reconnect: version_info is what the proxy already has; a nonce this stream
            # never issued, e.g. from a previous server, counts as none).
            st.force = True
            if req.version_info and not st.initialized:
                st.acked_version = req.version_info
                self.server.sync.acked(self.node_id, self.stream_id, t, req.version_info)
        names = set(req.resource_names)
        if t in WILDCARD_TYPES:
            st.wildcard = not names or "*" in names
        else:
            st.wildcard = "*" in names
        names.discard("*")
        st.names = names
        st.initialized = True
        self.dirty.add(t)

    def _on_delta(self, t: str, st: _TypeState, req: wire.Request) -> None:
        if not st.initialized:
            st.initialized = True
            st.force = True
            st.wildcard = t in WILDCARD_TYPES and not req.subscribe
            st.known = dict(req.initial_versions)
            st.synced_with = None
        for n in req.subscribe:
            if n == "*":
                st.wildcard = True
            else:
                st.names.add(n)
        for n in req.unsubscribe:
            if n == "*":
                st.wildcard = False
            else:
                st.names.discard(n)
                st.known_versions(t).pop(n, None)
                st.synced_with = None
        if req.response_nonce and req.response_nonce == st.nonce:
            self._ack_or_nack(t, st, req, st.sent_version)
        self.dirty.add(t)

    # ------------------------------------------------------------------ responses

    def _desired(self, t: str, st: _TypeState, entry: CacheEntry) -> Mapping[str, CachedResource]:
        res = entry.prepared.resources(t)
        authorize = self.server.authorize
        if st.wildcard and authorize is None:
            return res
        selected = res if st.wildcard else {n: res[n] for n in st.names if n in res}
        if authorize is None:
            return selected
        return {n: r for n, r in selected.items() if authorize(self.node_id, self.peer, t, n)}

    def _version(self, t: str, st: _TypeState, entry: CacheEntry, desired: Mapping[str, CachedResource]) -> str:
        if st.wildcard and self.server.authorize is None:
            return entry.prepared.type_version(t)
        return wire.set_version(desired)

    def _hold_removals(self, entry: CacheEntry) -> bool:
        for t in _REFERRERS:
            st = self.states.get(t)
            if st is None or not st.initialized:
                continue
            if st.pending or st.sent_version != self._version(t, st, entry, self._desired(t, st, entry)):
                return True
        return False

    def _warming(self, entry: CacheEntry) -> bool:
        """Are cluster/endpoint updates still in flight (so listener/route updates should wait)?"""
        if self.defer_since is not None and time.monotonic() - self.defer_since >= self.server.max_defer:
            return False
        cds, eds = self.states.get(CLUSTER), self.states.get(ENDPOINT)
        if (cds is not None and cds.pending) or (eds is not None and eds.pending):
            return True
        if cds is not None and eds is not None and eds.initialized and not eds.wildcard:
            endpoints = entry.prepared.resources(ENDPOINT)
            have = cds.known_names(CLUSTER) if self.delta else cds.sent
            return any(n in endpoints and n not in eds.names for n in have)
        return False

    async def _round(self, entry: CacheEntry) -> None:
        dirty, self.dirty = self.dirty, set()
        hold = self._hold_removals(entry)
        deferred = False
        for t in TYPE_ORDER:
            if t in self.dirty:  # dirtied by an earlier push of this round (endpoints after a cluster change)
                dirty.add(t)
                self.dirty.discard(t)
            st = self.states.get(t)
            if st is None or not st.initialized or t not in dirty:
                continue
            if t in _REFERRERS and st.sent_version and self._warming(entry):
                if self._unchanged(t, st, entry):
                    continue  # nothing to send: no need to wait for the clusters (the usual cluster-only change)
                self.dirty.add(t)
                deferred = True
                continue
            await self._push(t, st, entry, keep_removed=hold and t in _REMOVAL_HELD)
        if not deferred:
            self.defer_since = None
        elif self.defer_since is None:
            self.defer_since = time.monotonic()
        self._check_converged(entry)

    def _unchanged(self, t: str, st: _TypeState, entry: CacheEntry) -> bool:
        """Would :meth:`_push` of listeners/routes send nothing? (They never hold removals.)"""
        if st.force:
            return False
        if self.delta:
            base = st.synced_with
            now = entry.prepared
            return (
                base is not None
                and st.wildcard
                and self.server.authorize is None
                and (base is now or base.type_version(t) == now.type_version(t))
            )
        return st.sent_version == self._version(t, st, entry, self._desired(t, st, entry))

    async def _push(self, t: str, st: _TypeState, entry: CacheEntry, *, keep_removed: bool) -> None:
        desired = self._desired(t, st, entry)
        prepared = entry.prepared
        st.holding = False
        if self.delta:
            whole = desired is prepared.resources(t)
            base = st.synced_with
            if whole and base is not None:
                changed, removed = prepared.diff(base, t)
            else:
                known = st.known_versions(t)
                changed = [r for n, r in desired.items() if known.get(n) != r.version]
                removed = [n for n in known if n not in desired]
            if keep_removed and removed:
                st.holding = True
                removed = []
            if t == CLUSTER and changed and self._eds_subscribed():
                had = st.known_names(t)
                self._refresh_endpoints([r.name for r in changed if r.name in had])
            if whole and not st.holding:  # the proxy will have exactly this snapshot's type
                st.known, st.synced_with = None, prepared
            else:
                known = st.known_versions(t)
                for r in changed:
                    known[r.name] = r.version
                for n in removed:
                    known.pop(n, None)
                st.synced_with = None
            if not changed and not removed and not st.force:
                return
            version = self._version(t, st, entry, desired)
            nonce = self.server.next_nonce()
            body = wire.delta_discovery_response(
                version, t, nonce, b"".join(prepared.delta_entry(r) for r in changed), removed
            )
        else:
            if keep_removed:
                kept = {n: r for n, r in st.sent.items() if n not in desired and (st.wildcard or n in st.names)}
                if kept:
                    st.holding = True
                    desired = {**desired, **kept}
            if not st.wildcard and not st.names and not st.sent:
                st.force = False
                return  # nothing subscribed and nothing to take away
            version = wire.set_version(desired) if st.holding else self._version(t, st, entry, desired)
            if version == st.sent_version and not st.force:
                return
            nonce = self.server.next_nonce()
            whole = desired is prepared.resources(t)
            entries = prepared.sotw_all(t) if whole else b"".join(prepared.sotw_entry(r) for r in desired.values())
            body = wire.discovery_response(version, t, nonce, entries)
            if t == CLUSTER and self._eds_subscribed():
                sent = st.sent
                # memoized per snapshot pair: O(changed) per stream, not O(clusters)
                updated = prepared.diff(st.sent_from, t)[0] if whole and st.sent_from is not None else desired.values()
                self._refresh_endpoints([r.name for r in updated if (s := sent.get(r.name)) and s.version != r.version])
            st.sent = desired
            st.sent_from = prepared if whole else None
        st.sent_version, st.nonce, st.pending, st.force = version, nonce, True, False
        self.server.sync.sent(self.node_id, self.stream_id, t, version)
        if not fastsend.try_send(self.stream, body):
            await self.stream.send_message(body)

    def _eds_subscribed(self) -> bool:
        eds = self.states.get(ENDPOINT)
        return eds is not None and eds.initialized

    def _refresh_endpoints(self, clusters: list[str]) -> None:
        """Resend the endpoints of updated clusters, changed or not.

        Envoy replaces an updated EDS cluster with a new one that stays warming until it receives that cluster's
        endpoints; if the server sent nothing (they did not change), the update would wait out Envoy's 15 s
        initial-fetch timeout. The endpoint push follows the cluster push on the same stream, so Envoy has the new
        cluster by the time the endpoints arrive.
        """
        eds = self.states.get(ENDPOINT)
        if not clusters or eds is None or not eds.initialized:
            return
        if self.delta:
            known = eds.known_versions(ENDPOINT)
            for name in clusters:
                known.pop(name, None)
            eds.synced_with = None
        else:
            eds.force = True
        self.dirty.add(ENDPOINT)

    def _check_converged(self, entry: CacheEntry) -> None:
        if self.converged_version == entry.version:
            return
        for t, st in self.states.items():
            if not st.initialized or t not in TYPE_ORDER:
                continue
            if st.pending or st.holding:
                return
            if st.acked_version != self._version(t, st, entry, self._desired(t, st, entry)):
                return
        self.converged_version = entry.version
        set_at = entry.set_at if entry.set_at >= self.opened_at else None
        self.server.sync.converged(self.node_id, self.stream_id, entry.version, set_at)
