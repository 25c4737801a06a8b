"""How the pre-flight check divides one proxy's resources to validate into self-contained parts: each listener with
every cluster it refers to, listeners sharing an address together, the parts balanced (see
:mod:`xds_server.preflight`, "parts" and "narrowing")."""

from __future__ import annotations

from dataclasses import dataclass

from xds_server.preflight_wire import listener_addresses
from xds_server.snapshot import CachedResource


@dataclass(frozen=True)
class Part:
    """Listeners to validate with the clusters they refer to (and clusters to validate on their own)."""

    listeners: tuple[CachedResource, ...]
    clusters: frozenset[str]


def address_groups(addresses: list[list[bytes]]) -> list[list[int]]:
    """The indexes of the listeners, grouped so that listeners sharing any address (its bytes) are in one group;
    in order of their first member. A listener without an address is a group of its own."""
    parent = list(range(len(addresses)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[bytes, int] = {}
    for i, addrs in enumerate(addresses):
        for a in addrs:
            j = first.setdefault(a, i)
            parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(addresses)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def divide(kept: list[CachedResource], needs: list[frozenset[str]], loose: list[str], parts: int) -> list[Part]:
    """Listeners to check (``needs[i]``: the clusters ``kept[i]`` refers to) and clusters to check on their own, in
    at most ``parts`` parts balanced by listeners and clusters (a listener costs Envoy about twice a cluster), each
    listener in one part with every cluster it refers to. Listeners sharing an address stay in one part (Envoy
    refuses two listeners on one address). One part when there is nothing to divide."""
    groups = address_groups([listener_addresses(r.body) for r in kept])
    if parts <= 1 or len(groups) + len(loose) < 2:
        return [Part(tuple(kept), frozenset().union(*needs, loose))]
    loads, members = [0] * parts, [list[int]() for _ in range(parts)]
    cost = [2 + len(need) for need in needs]
    for group in sorted(groups, key=lambda g: (-sum(cost[i] for i in g), g[0])):
        least = loads.index(min(loads))
        members[least] += group
        loads[least] += sum(cost[i] for i in group)
    extra: list[list[str]] = [[] for _ in range(parts)]
    for name in loose:
        least = loads.index(min(loads))
        extra[least].append(name)
        loads[least] += 1
    return [
        Part(tuple(kept[i] for i in sorted(m)), frozenset().union(*(needs[i] for i in m), x))
        for m, x in zip(members, extra, strict=True)
        if m or x
    ]
