"""The snapshot cache: the latest complete :class:`Snapshot` of every node, and change notification for streams.

The ADS server sees only :class:`SnapshotSource`. A node without a snapshot gets no response at all (never a
partial or empty config), and neither does any node before :meth:`SnapshotCache.mark_ready` is called: after a
control-plane restart the runner opens the gate once the first full translation is in the cache.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from xds_server.snapshot import Snapshot
from xds_server.wire import PreparedSnapshot


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """What a node should have: the prepared snapshot and when it was set (``time.monotonic()``)."""

    prepared: PreparedSnapshot
    set_at: float

    @property
    def version(self) -> str:
        return self.prepared.version


class SnapshotSource(Protocol):
    """The cache as the ADS server sees it."""

    def get(self, node_id: str) -> CacheEntry | None:
        """The node's current entry, or None when it has none yet (or the ready gate is closed)."""
        ...

    async def wait_for_change(self, node_id: str, seen: CacheEntry | None) -> CacheEntry:
        """Return as soon as :meth:`get` returns an entry other than ``seen``."""
        ...


class SnapshotCache:
    """Per-node snapshots (node id -> :class:`Snapshot`), with a ``ready`` gate.

    Not thread-safe: call it from the event loop's thread (``loop.call_soon_threadsafe`` from elsewhere).
    Nodes sharing one snapshot content (same version) share one :class:`PreparedSnapshot`, so the wire encoding
    of a resource is done once for all of them.
    """

    def __init__(self, *, ready: bool = False) -> None:
        self._entries: dict[str, CacheEntry] = {}
        self._prepared: dict[str, tuple[PreparedSnapshot, int]] = {}
        self._events: dict[str, asyncio.Event] = {}
        self._ready = ready
        self._ready_event: asyncio.Event | None = None
        self._last_snapshot: Snapshot | None = None
        self._last_version = ""

    # ------------------------------------------------------------------ writer side

    @property
    def ready(self) -> bool:
        return self._ready

    def mark_ready(self) -> None:
        """Open the gate: from now on nodes with a snapshot get responses."""
        if self._ready:
            return
        self._ready = True
        if self._ready_event is not None:
            self._ready_event.set()
        for node_id in list(self._events):
            self._wake(node_id)

    async def wait_ready(self) -> None:
        if self._ready:
            return
        if self._ready_event is None:
            self._ready_event = asyncio.Event()
        await self._ready_event.wait()

    def set_snapshot(self, node_id: str, snapshot: Snapshot) -> bool:
        """Replace the node's snapshot. Returns False (and changes nothing) when the content is unchanged."""
        old = self._entries.get(node_id)
        version = self._version_of(snapshot)
        if old is not None and old.version == version:
            return False
        prepared, refs = self._prepared.get(version, (None, 0))
        if prepared is None:
            prepared = PreparedSnapshot(snapshot)
        self._prepared[version] = (prepared, refs + 1)
        if old is not None:
            self._release(old.version)
        self._entries[node_id] = CacheEntry(prepared, time.monotonic())
        self._wake(node_id)
        return True

    def _version_of(self, snapshot: Snapshot) -> str:
        # Snapshot.version hashes every resource on each call; a runner sets one snapshot object on many nodes.
        if snapshot is self._last_snapshot:
            return self._last_version
        self._last_snapshot, self._last_version = snapshot, snapshot.version
        return self._last_version

    def clear_snapshot(self, node_id: str) -> None:
        """Forget a node (it is gone). Its open streams keep what they have and get no further updates."""
        old = self._entries.pop(node_id, None)
        if old is not None:
            self._release(old.version)

    def _release(self, version: str) -> None:
        prepared, refs = self._prepared[version]
        if refs <= 1:
            del self._prepared[version]
        else:
            self._prepared[version] = (prepared, refs - 1)

    def _wake(self, node_id: str) -> None:
        ev = self._events.pop(node_id, None)
        if ev is not None:
            ev.set()

    # ------------------------------------------------------------------ reader side

    def snapshot(self, node_id: str) -> Snapshot | None:
        """The node's snapshot regardless of the ready gate (for debug endpoints)."""
        e = self._entries.get(node_id)
        return e.prepared.snapshot if e else None

    def nodes(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def get(self, node_id: str) -> CacheEntry | None:
        if not self._ready:
            return None
        return self._entries.get(node_id)

    async def wait_for_change(self, node_id: str, seen: CacheEntry | None) -> CacheEntry:
        while True:
            cur = self.get(node_id)
            if cur is not None and cur is not seen:
                return cur
            ev = self._events.get(node_id)
            if ev is None:
                ev = self._events[node_id] = asyncio.Event()
            await ev.wait()
