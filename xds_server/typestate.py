"""What one ADS stream knows about one resource type: subscription, what was sent, ACKed and is pending."""

from __future__ import annotations

from collections.abc import Mapping

from xds_server.snapshot import CachedResource
from xds_server.wire import PreparedSnapshot


class TypeState:
    __slots__ = (
        "acked_version",
        "force",
        "holding",
        "initialized",
        "known",
        "names",
        "nonce",
        "pending",
        "sent",
        "sent_from",
        "sent_version",
        "synced_with",
        "wildcard",
    )

    def __init__(self) -> None:
        self.initialized = False
        self.wildcard = False
        self.names: set[str] = set()
        self.sent: Mapping[str, CachedResource] = {}  # SotW: content of the last response
        self.sent_from: PreparedSnapshot | None = None  # SotW: ``sent`` is this snapshot's whole type
        #: delta: name -> version the proxy has (or was last sent); None while it is exactly ``synced_with``'s type
        #: (the common case: no per-stream copy of what every stream in sync shares)
        self.known: dict[str, str] | None = {}
        self.sent_version = ""
        self.acked_version = ""
        self.nonce = ""
        self.pending = False
        self.force = False
        self.holding = False  # a response kept resources the snapshot removed (make-before-break)
        self.synced_with: PreparedSnapshot | None = None  # delta: ``known`` is exactly this snapshot's type

    def known_versions(self, type_url: str) -> dict[str, str]:
        """Delta: ``known`` as a dict of its own (built from ``synced_with`` when it stood for it)."""
        k = self.known
        if k is None:
            assert self.synced_with is not None
            k = self.known = {n: r.version for n, r in self.synced_with.resources(type_url).items()}
        return k

    def known_names(self, type_url: str) -> Mapping[str, object]:
        """Delta: the names the proxy has, without copying."""
        if self.known is None:
            assert self.synced_with is not None
            return self.synced_with.resources(type_url)
        return self.known
