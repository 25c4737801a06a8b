"""Provenance: every generated listener, route and cluster names the Meshwork policies that shaped it.

Rendered as ``metadata.filter_metadata["meshwork.io"]`` with one string field ``policies`` (comma-separated
``Kind/namespace/name@generation``), so it shows in ``/config_dump`` and in access logs through
``%METADATA(ROUTE:meshwork.io:policies)%``. Route stats carry the policy in their ``stat_prefix``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from envoy_data_plane.envoy.config.core.v3 import Metadata
from envoy_data_plane.google.protobuf import Struct, Value

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate._common import stat_token
from xds_server.translate._shared import shared

NAMESPACE: Final = "meshwork.io"
POLICIES_KEY: Final = "policies"


def refs(provenance: Iterable[ir.Provenance | None]) -> str:
    """Comma-separated policy refs, deduplicated, in first-seen order."""
    seen: dict[str, None] = {}
    for p in provenance:
        if p is not None:
            seen.setdefault(p.ref, None)
    return ",".join(seen)


def metadata(provenance: Iterable[ir.Provenance | None], **extra: str) -> Metadata | None:
    """``filter_metadata["meshwork.io"]`` naming the policies, or ``None`` when there are none and no extras.
    Shared (one object per content, see ``_shared``): never mutate it."""
    return _metadata(refs(provenance), tuple(sorted((k, v) for k, v in extra.items() if v)))


@shared(65_536)
def _metadata(joined: str, extra: tuple[tuple[str, str], ...]) -> Metadata | None:
    fields = {k: new(Value, string_value=v) for k, v in extra}
    if joined:
        fields[POLICIES_KEY] = new(Value, string_value=joined)
    if not fields:
        return None
    return new(Metadata, filter_metadata={NAMESPACE: new(Struct, fields=fields)})


def route_stat_prefix(route: ir.Route) -> str:
    """Per-route stats (``vhost.<vh>.route.<prefix>.*``) name the route and, if any, its policy."""
    if route.provenance is not None:
        return stat_token(f"{route.provenance.stat_name}_{route.name}")
    return stat_token(route.name)


def stat_name(name: str) -> str:
    """A resource name as one stat-name segment: Envoy splits stat names on dots, so ``backend.default|80|v1``
    becomes ``backend_default|80|v1`` (Kubernetes names never contain ``_``, so this stays unambiguous). Cluster
    ``alt_stat_name`` and virtual host names use it, so Prometheus labels (``envoy_cluster_name``,
    ``envoy_virtual_host``, ``envoy_route``) carry the whole name instead of its first dot-separated part."""
    return name.replace(".", "_")
