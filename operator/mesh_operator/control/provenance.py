"""Which policies shaped which Envoy resource of a proxy: the key to naming the culprit of a rejection.

Envoy names the resource it refuses (``Error adding/updating listener(s) outbound|8080|backend.shop: ...``); the
IR element of that name carries the provenance of every policy that went into it. Listeners and their route
configurations share a name; clusters have their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from xds_server.ir import Cluster, InboundListener, OutboundListener, Provenance, ProxyConfig
from xds_server.layered import GONE, Layered

Element = InboundListener | OutboundListener | Cluster


def element_policies(element: Element) -> set[str]:
    """``Kind/namespace/name`` of every policy whose provenance the element carries."""
    found: list[Provenance | None] = []
    if isinstance(element, Cluster):
        found += element.provenance
    else:
        for r in element.routes:
            found += [r.provenance, r.retry.provenance if r.retry else None]
        if isinstance(element, InboundListener):
            found += [p.provenance for p in element.rbac]
            found += [p.provenance for p in element.jwt.providers] if element.jwt is not None else []
        else:
            found += element.provenance
    return {p.policy for p in found if p is not None}


def elements(cfg: ProxyConfig) -> Iterable[Element]:
    yield from cfg.inbound
    yield from cfg.outbound
    if cfg.transparent is not None:
        # a captured pod's listeners: the inbound chains (RBAC, JWT, inbound routes) and one per ClusterIP:port
        yield from cfg.transparent.inbound
        yield from cfg.transparent.destinations
    yield from cfg.clusters


def resource_policies(cfg: ProxyConfig) -> dict[str, set[str]]:
    """Envoy resource name -> the policies it carries (only resources that carry any)."""
    out: dict[str, set[str]] = {}
    for e in elements(cfg):
        if policies := element_policies(e):
            out.setdefault(e.name, set()).update(policies)
    return out


_NAME_CHARS = r"[A-Za-z0-9_.|:~/-]"


def named_resources(message: str, names: Iterable[str]) -> list[str]:
    """The resource names that ``message`` (an Envoy error) mentions as whole names, longest first."""
    found = []
    for name in sorted(set(names), key=len, reverse=True):
        if re.search(rf"(?<!{_NAME_CHARS}){re.escape(name)}(?!{_NAME_CHARS})", message):
            found.append(name)
    return found


def markers(policy: str) -> tuple[str, ...]:
    """How a policy shows inside Envoy's dump of a refused message: its metadata (``Kind/ns/name@``) and its stat
    prefix token (``kind_ns_name``, see :attr:`xds_server.ir.Provenance.stat_name`)."""
    kind, namespace, name = policy.split("/", 2)
    stat = f"{kind.lower()}_{namespace}_{name}".replace(".", "_").replace("-", "_")
    return (f"{policy}@", stat)


def culprits(message: str, by_resource: Mapping[str, set[str]]) -> set[str]:
    """The policies behind an Envoy error: those of the resources it names, else those whose provenance shows in
    its dump of the refused message. Empty when it points at nothing that carries a policy."""
    named = {p for name in named_resources(message, by_resource) for p in by_resource[name]}
    if named:
        return named
    everyone = {p for ps in by_resource.values() for p in ps}
    return {p for p in everyone if any(m in message for m in markers(p))}


@dataclass(frozen=True, slots=True, eq=False)
class ProxyProvenance:
    """A proxy's config with its :func:`resource_policies`, the base of the next :func:`provenance_since`."""

    cfg: ProxyConfig
    by_resource: Mapping[str, set[str]]
    #: no two outbound listeners of ``cfg`` share a name
    unique: bool


def provenance(cfg: ProxyConfig) -> ProxyProvenance:
    return ProxyProvenance(cfg, resource_policies(cfg), len({lis.name for lis in cfg.outbound}) == len(cfg.outbound))


def provenance_since(
    previous: ProxyProvenance | None,
    cfg: ProxyConfig,
    hint: tuple[ProxyConfig, tuple[int, ...], tuple[int, ...]] | None = None,
) -> ProxyProvenance:
    """``resource_policies(cfg)`` (as ``.by_resource``), derived from the proxy's previous one when only outbound
    listeners and clusters changed, at the same positions and under the same names, each name carried by one
    element (outbound listeners are ``outbound|…``, clusters ``host|…``, inbound ones ``inbound|…``). ``hint``
    (changed positions, from the translator that patched the config) saves comparing every element."""
    if previous is None:
        return provenance(cfg)
    old = previous.cfg
    if old is cfg:
        return previous
    if old.inbound != cfg.inbound or len(old.outbound) != len(cfg.outbound) or len(old.clusters) != len(cfg.clusters):
        return provenance(cfg)
    pairs: list[tuple[Element, Element]]
    if hint is not None and hint[0] is old:
        pairs = [(old.outbound[i], cfg.outbound[i]) for i in hint[1]]
        pairs += [(old.clusters[i], cfg.clusters[i]) for i in hint[2]]
    else:
        pairs = [(a, b) for a, b in zip(old.outbound, cfg.outbound, strict=True) if a is not b]
        pairs += [(a, b) for a, b in zip(old.clusters, cfg.clusters, strict=True) if a is not b]
    if len(pairs) > len(cfg.outbound) // 4 + len(cfg.clusters) // 4 + 8 or not previous.unique:
        return provenance(cfg)
    changes: dict[str, set[str]] = {}
    for a, b in pairs:
        listener = isinstance(b, OutboundListener)
        if a.name != b.name or b.name.startswith("inbound|") or b.name.startswith("outbound|") != listener:
            return provenance(cfg)
        changes[b.name] = element_policies(b) or GONE
    # (layered on the previous map: no copy of a large proxy's whole provenance per change)
    return ProxyProvenance(cfg, Layered.over(previous.by_resource, changes), True)
