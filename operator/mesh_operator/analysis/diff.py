"""What a change does to every proxy's Envoy config: the pure half of ``meshctl diff``.

Both meshes are translated with the pure pipeline; each proxy's xDS resources (Envoy proto-JSON) are compared by
type and name: added, removed, changed, and for a changed resource every leaf field that differs (lists of named
things are matched by name, so one inserted route reads as one added route, not every later one changed).
Culprits come from provenance: the policies a changed resource names (its ``meshwork.io`` metadata and RBAC rule
keys) that differ between before and after; when the change is not a policy's, the Mesh or the inventory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mesh_operator.translate import MeshState, translate_mesh
from xds_server import ir
from xds_server.translate import to_proto_json, translate_proxy

__all__ = ["FieldChange", "MeshDiff", "ProxyDiff", "ResourceChange", "changed_inputs", "diff_states"]

RESOURCE_TYPES = ("listeners", "routes", "clusters", "endpoints")
_REF = re.compile(r"\b((?:TrafficPolicy|RetryPolicy|AccessPolicy|AuthenticationPolicy)/[a-z0-9.-]+/[a-z0-9.-]+)@\d+")


@dataclass(frozen=True)
class FieldChange:
    #: A JSONPath-like location inside the resource: ``virtual_hosts[0].routes[name=backend.shop/api].route``.
    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class ResourceChange:
    type: str
    name: str
    change: str  # added | removed | changed
    fields: tuple[FieldChange, ...] = ()
    culprits: tuple[str, ...] = ()
    #: The mesh service (``name.ns``) the resource is about, when it is about one.
    service: str = ""


@dataclass(frozen=True)
class ProxyDiff:
    node: str
    #: added (a new workload), removed, or changed.
    change: str
    resources: tuple[ResourceChange, ...] = ()
    #: Why translation of this proxy failed after the change (it would keep its last config).
    failed: str = ""


@dataclass(frozen=True)
class MeshDiff:
    proxies: tuple[ProxyDiff, ...]
    total_proxies: int
    #: Inputs that differ: ``Kind/ns/name`` of policies, ``Mesh/name``, ``Inventory``.
    changed_inputs: tuple[str, ...] = ()
    #: Policy problems after the change (``Kind/ns/name: reason: message``), as status would report them.
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def changed(self) -> bool:
        return bool(self.proxies)

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(sorted({p.node.split("/", 1)[0] for p in self.proxies}))

    @property
    def services(self) -> tuple[str, ...]:
        """Mesh host names (``name.ns``) whose routing, clusters or inbound side changed somewhere."""
        return tuple(sorted({r.service for p in self.proxies for r in p.resources if r.service}))


def _services_by_resource(cfg: ir.ProxyConfig | None) -> dict[str, str]:
    """Envoy resource name -> the service it is about (listeners and their route configs share a name; a
    cluster's name is also its EDS name)."""
    if cfg is None:
        return {}
    out = {lis.name: lis.service for lis in cfg.inbound}
    out.update({lis.name: lis.service for lis in cfg.outbound})
    out.update({c.name: c.service for c in cfg.clusters})
    return out


def _policy_id(obj: Any) -> str:
    return f"{type(obj).__name__}/{obj.metadata.namespace or 'default'}/{obj.metadata.name}"


def _spec(obj: Any) -> str:
    """What a change of the object is: its spec (metadata such as uid, resourceVersion or generation is not)."""
    return json.dumps(obj.model_dump(mode="json", include={"spec"}), sort_keys=True, default=str)


def changed_inputs(before: MeshState, after: MeshState) -> tuple[str, ...]:
    """``Kind/ns/name`` of every policy added, removed or changed; ``Mesh/NAME`` and ``Inventory`` likewise."""
    out: set[str] = set()
    old = {_policy_id(p): _spec(p) for p in before.policies}
    new = {_policy_id(p): _spec(p) for p in after.policies}
    out.update(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if _spec(before.mesh) != _spec(after.mesh):
        out.add(f"Mesh/{after.mesh.metadata.name}")
    if before.services != after.services or before.workloads != after.workloads:
        out.add("Inventory")
    return tuple(sorted(out))


def _resources(cfg: ir.ProxyConfig) -> dict[str, dict[str, Any]]:
    res = translate_proxy(cfg)
    msgs = {
        "listeners": res.listeners,
        "routes": res.route_configs,
        "clusters": res.clusters,
        "endpoints": res.cluster_load_assignments,
    }
    out: dict[str, dict[str, Any]] = {}
    for kind, items in msgs.items():
        out[kind] = {}
        for m in items:
            data = to_proto_json(m)
            out[kind][data.get("name") or data.get("cluster_name", "")] = data
    return out


def _key_of(item: Any) -> str | None:
    if isinstance(item, dict):
        for k in ("name", "cluster_name"):
            if isinstance(item.get(k), str):
                return str(item[k])
    return None


def field_changes(before: Any, after: Any, path: str = "") -> Iterator[FieldChange]:
    """Every leaf that differs. Lists whose items all have a ``name`` are matched by name."""
    if before == after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for k in list(before) + [k for k in after if k not in before]:
            sub = f"{path}.{k}" if path else k
            if k not in after:
                yield FieldChange(sub, before[k], None)
            elif k not in before:
                yield FieldChange(sub, None, after[k])
            else:
                yield from field_changes(before[k], after[k], sub)
        return
    if isinstance(before, list) and isinstance(after, list):
        bkeys, akeys = [_key_of(i) for i in before], [_key_of(i) for i in after]
        if before and after and None not in bkeys and None not in akeys and len(set(bkeys)) == len(bkeys):
            old = dict(zip(bkeys, before, strict=True))
            new = dict(zip(akeys, after, strict=True))
            for k in [k for k in bkeys if k is not None] + [k for k in akeys if k not in old and k is not None]:
                sub = f"{path}[name={k}]"
                if k not in new:
                    yield FieldChange(sub, old[k], None)
                elif k not in old:
                    yield FieldChange(sub, None, new[k])
                else:
                    yield from field_changes(old[k], new[k], sub)
            if [k for k in bkeys if k in new] != [k for k in akeys if k in old]:
                yield FieldChange(f"{path}(order)", [k for k in bkeys if k in new], [k for k in akeys if k in old])
            return
        for i in range(max(len(before), len(after))):
            sub = f"{path}[{i}]"
            if i >= len(after):
                yield FieldChange(sub, before[i], None)
            elif i >= len(before):
                yield FieldChange(sub, None, after[i])
            else:
                yield from field_changes(before[i], after[i], sub)
        return
    yield FieldChange(path, before, after)


def _mentions(value: Any) -> set[str]:
    return set(_REF.findall(json.dumps(value, default=str))) if value is not None else set()


def _culprits(fields: tuple[FieldChange, ...], old: Any, new: Any, inputs: tuple[str, ...]) -> tuple[str, ...]:
    """Changed inputs named where the resource changed (field paths and values), else anywhere in the resource;
    if it names none of them, the Mesh or inventory change, if any."""
    changed = set(inputs)
    near: set[str] = set()
    for f in fields:
        near |= set(_REF.findall(f.path)) | _mentions(f.before) | _mentions(f.after)
    for named in (near, _mentions(old) | _mentions(new)):
        if hits := sorted(named & changed):
            return tuple(hits)
    return tuple(i for i in inputs if i == "Inventory" or i.startswith("Mesh/"))


def _proxy_diff(
    old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]], inputs: tuple[str, ...], services: dict[str, str]
) -> tuple[ResourceChange, ...]:
    out: list[ResourceChange] = []
    for kind in RESOURCE_TYPES:
        a, b = old.get(kind, {}), new.get(kind, {})
        for name in sorted(a.keys() | b.keys()):
            if name not in b:
                culprits = _culprits((), a[name], None, inputs)
                out.append(ResourceChange(kind, name, "removed", culprits=culprits, service=services.get(name, "")))
            elif name not in a:
                culprits = _culprits((), None, b[name], inputs)
                out.append(ResourceChange(kind, name, "added", culprits=culprits, service=services.get(name, "")))
            elif a[name] != b[name]:
                fields = tuple(field_changes(a[name], b[name]))
                culprits = _culprits(fields, a[name], b[name], inputs)
                out.append(ResourceChange(kind, name, "changed", fields, culprits, services.get(name, "")))
    return tuple(out)


def diff_states(before: MeshState, after: MeshState) -> MeshDiff:
    """Translate both meshes and compare every proxy. Proxies whose IR is equal are not rendered at all."""
    inputs = changed_inputs(before, after)
    old_t, new_t = translate_mesh(before), translate_mesh(after)
    proxies: list[ProxyDiff] = []
    for node in sorted(old_t.proxies.keys() | new_t.proxies.keys() | new_t.failed.keys()):
        if node in new_t.failed:
            proxies.append(ProxyDiff(node, "failed", failed=new_t.failed[node]))
            continue
        a, b = old_t.proxies.get(node), new_t.proxies.get(node)
        if a == b:
            continue
        old_res = _resources(a) if a is not None else {}
        new_res = _resources(b) if b is not None else {}
        services = {**_services_by_resource(a), **_services_by_resource(b)}
        resources = _proxy_diff(old_res, new_res, inputs, services)
        if a is None:
            proxies.append(ProxyDiff(node, "added", resources))
        elif b is None:
            proxies.append(ProxyDiff(node, "removed", resources))
        elif resources:
            proxies.append(ProxyDiff(node, "changed", resources))
    problems = tuple(
        f"{key}: {o.condition().get('reason', '')}: {o.condition().get('message', '')}"
        for key, o in sorted(new_t.outcomes.items(), key=lambda kv: str(kv[0]))
        if o.condition().get("status") != "True"
    )
    return MeshDiff(tuple(proxies), len(new_t.proxies), inputs, problems)
