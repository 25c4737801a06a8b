"""Transparent mode: what a sidecar whose pod's traffic is captured (iptables) receives instead of explicit ports.

Outbound: one listener on the capture port with ``use_original_dst`` hands each connection to the listener of
its original destination: a per-Service ``ClusterIP:port`` listener (the service's own routes, or its TCP proxy),
else a per-port listener that routes HTTP by ``Host`` (every name of the service callers may use), else the
capture listener's own chain: pass through to the original destination, or refuse (``registry_only``).

Inbound: one listener on the capture port with the ``original_dst`` listener filter and a filter chain per served
port (each an :class:`~xds_server.ir.InboundListener`: STRICT mTLS, access policies, rate limits, as in local mode).
"""

from __future__ import annotations

from dataclasses import dataclass

from xds_server.ir.proxy import InboundListener, OutboundListener
from xds_server.ir.routes import Route


@dataclass(frozen=True, slots=True)
class HostRoutes:
    """One HTTP service on a shared port, chosen by the request's ``Host`` (port stripped)."""

    service: str  # name.namespace
    domains: tuple[str, ...]
    routes: tuple[Route, ...]


@dataclass(frozen=True, slots=True)
class PortRoutes:
    """Every HTTP service callers reach on ``port``, by Host; listener ``0.0.0.0:port``, not bound."""

    port: int
    hosts: tuple[HostRoutes, ...]

    @property
    def name(self) -> str:
        return f"outbound|{self.port}"


@dataclass(frozen=True, slots=True)
class TransparentConfig:
    outbound_port: int = 15001
    inbound_port: int = 15006
    #: Per Service ``ClusterIP:port`` (OutboundListener with ``bind=False``).
    destinations: tuple[OutboundListener, ...] = ()
    by_port: tuple[PortRoutes, ...] = ()
    #: Chains of the inbound listener, one per served port (``InboundListener.port`` is the port peers dial).
    inbound: tuple[InboundListener, ...] = ()
    #: Unknown destinations are refused instead of passed through to their original address.
    registry_only: bool = False
