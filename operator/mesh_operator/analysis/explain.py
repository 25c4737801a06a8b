"""Which rule a request meets, computed from the IR: the simulation behind ``meshctl explain``.

The request is followed the way the sidecars handle it: the caller's outbound listener for the service (path
normalised like the HTTP connection manager does: dot segments removed, slashes merged), its routes in order (the
first whose path, method, headers and query parameters all match), the route's action (redirect, fault, rewrite,
header edits, weighted backends), then on each destination instance the inbound side: DENY policies first, then
ALLOW policies with default-deny once an enforced ALLOW policy exists. Within one action Envoy evaluates the
policies of its RBAC filter in key order (``Kind/ns/name@gen#rule``); the first match decides, and so it does here.

What cannot be known without traffic is reported as such: partial faults are probabilities, local rate limits a
bucket size, weighted splits the share of each backend.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl

from mesh_operator.errors import RenderError
from mesh_operator.translate import MeshState, translate_mesh
from xds_server import ir

__all__ = ["Access", "Backend", "Explanation", "Request", "explain", "normalize_path"]


@dataclass(frozen=True)
class Request:
    path: str = "/"
    method: str = "GET"
    #: Header names as given; matched case-insensitively like HTTP does.
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Backend:
    cluster: str
    weight: int
    #: Share of requests, 0–100.
    percent: float
    #: Node ids (``namespace/workload``) of the instances behind the cluster.
    instances: tuple[str, ...]


@dataclass(frozen=True)
class Access:
    """The access decision on one destination instance."""

    instance: str
    allowed: bool
    #: ``Kind/ns/name@gen#rule`` of the deciding rule; empty with ``reason`` ``default-deny`` or ``no-policy``.
    rule: str
    reason: Literal["deny-rule", "allow-rule", "default-deny", "no-policy", "no-allow-policy"]
    #: Shadow policies that would have denied it had they been enforced.
    shadow_denied_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Explanation:
    source: str
    source_identity: str
    service: str
    port: int
    request: Request
    #: The path the routes see (normalised, without query).
    normalized_path: str
    route: str | None
    #: ``Kind/ns/name@gen`` of the policy that made the route (None: the mesh's default route).
    policy: str | None
    #: The status the caller sees when nothing probabilistic intervenes.
    status: int
    #: Why: ``route_not_found``, ``redirect``, ``fault_abort``, ``rbac_denied``, ``no_healthy_upstream``, ``upstream``.
    outcome: str
    backends: tuple[Backend, ...] = ()
    #: The path the application receives (after rewrites).
    upstream_path: str | None = None
    upstream_host: str | None = None
    redirect_location: str | None = None
    response_headers: tuple[tuple[str, str], ...] = ()
    request_headers_set: tuple[tuple[str, str], ...] = ()
    request_headers_removed: tuple[str, ...] = ()
    timeout_ms: int | None = None
    idle_timeout_ms: int | None = None
    retry: ir.Retry | None = None
    retry_budget: ir.RetryBudget | None = None
    fault: ir.Fault | None = None
    mirrors: tuple[ir.Mirror, ...] = ()
    rate_limit: ir.RateLimit | None = None
    access: tuple[Access, ...] = ()
    #: Things a user should know that change the outcome for some requests (partial fault, rate limit, …).
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def allowed_everywhere(self) -> bool:
        return all(a.allowed for a in self.access)


def normalize_path(raw: str) -> tuple[str, str]:
    """``(path, query)`` as Envoy's connection manager sees it: ``normalize_path`` (RFC 3986 dot segments) and
    ``merge_slashes``; the query string is left as is."""
    path, _, query = raw.partition("?")
    path = path.split("#", 1)[0] or "/"
    path = re.sub(r"/{2,}", "/", path)
    out: list[str] = []
    for seg in path.split("/")[1:]:
        if seg == ".":
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    normalized = "/" + "/".join(out)
    if path.endswith(("/.", "/..")) and not normalized.endswith("/"):
        normalized += "/"
    return normalized, query


def _headers(req: Request) -> dict[str, str]:
    out = {k.lower(): v for k, v in req.headers}
    out[":method"] = req.method.upper()
    return out


def _string(kind: str, pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    if kind == "exact":
        return value == pattern
    if kind == "prefix":
        return value.startswith(pattern)
    if kind == "regex":
        return re.fullmatch(pattern, value) is not None
    return True


def header_matches(m: ir.HeaderMatch, headers: dict[str, str]) -> bool:
    value = headers.get(m.name.lower())
    hit = value is not None if m.kind == "present" else value is not None and _string(m.kind, m.value, value)
    return hit != m.invert


def route_matches(m: ir.RouteMatch, path: str, query: str, headers: dict[str, str]) -> bool:
    if not _string(m.path.kind, m.path.value, path):
        return False
    if m.method is not None and headers[":method"] != m.method.upper():
        return False
    if not all(header_matches(h, headers) for h in m.headers):
        return False
    params = dict(parse_qsl(query, keep_blank_values=True))
    for q in m.query:
        if q.name not in params:
            return False
        if q.kind != "present" and not _string(q.kind, q.value, params[q.name]):
            return False
    return True


def principal_matches(p: ir.Principal, identity: str) -> bool:
    if p.request is not None:  # an end user's JWT: the simulated request carries none
        return False
    if p.spiffe_exact is not None:
        return identity == p.spiffe_exact
    if p.spiffe_prefix is not None:
        return identity.startswith(p.spiffe_prefix)
    return p.any


def _request_matches(r: ir.RequestMatch, path: str, headers: dict[str, str]) -> bool:
    if r.paths and not any(_string(p.kind, p.value, path, ignore_case=r.ignore_case) for p in r.paths):
        return False
    if r.methods and headers[":method"] not in {m.upper() for m in r.methods}:
        return False
    return all(header_matches(h, headers) for h in r.headers)


def rule_matches(rule: ir.AccessRule, identity: str, path: str, headers: dict[str, str]) -> bool:
    principals = rule.principals or (ir.Principal(any=True),)
    if not any(principal_matches(p, identity) for p in principals):
        return False
    return not rule.requests or any(_request_matches(r, path, headers) for r in rule.requests)


def _first_match(
    policies: list[ir.RbacPolicy], identity: str, path: str, headers: dict[str, str]
) -> tuple[str | None, bool]:
    """The first matching rule key in Envoy's order; and whether any rule was there to match at all."""
    keys = sorted((f"{p.provenance.ref}#{r.name}", r) for p in policies for r in p.rules)
    for key, rule in keys:
        if rule_matches(rule, identity, path, headers):
            return key, True
    return None, bool(keys)


def access_decision(
    lis: ir.InboundListener, instance: str, identity: str, path: str, headers: dict[str, str]
) -> Access:
    rbac = lis.rbac
    deny = [p for p in rbac if p.action == "deny" and not p.shadow]
    allow = [p for p in rbac if p.action == "allow" and not p.shadow]
    shadow_denied: list[str] = []
    shadow_deny = [p for p in rbac if p.action == "deny" and p.shadow]
    if shadow_deny and (k := _first_match(deny + shadow_deny, identity, path, headers)[0]):
        shadow_denied.append(k)
    shadow_allow = [p for p in rbac if p.action == "allow" and p.shadow]
    if shadow_allow and _first_match(allow + shadow_allow, identity, path, headers)[0] is None:
        shadow_denied.append("default-deny of " + ", ".join(sorted({p.provenance.ref for p in shadow_allow})))
    shadow = tuple(shadow_denied)
    hit, _ = _first_match(deny, identity, path, headers)
    if hit is not None:
        return Access(instance, False, hit, "deny-rule", shadow)
    if allow:
        hit, _ = _first_match(allow, identity, path, headers)
        if hit is not None:
            return Access(instance, True, hit, "allow-rule", shadow)
        return Access(instance, False, "", "default-deny", shadow)
    return Access(instance, True, "", "no-allow-policy" if deny else "no-policy", shadow)


def _service_key(state: MeshState, service: str) -> str:
    """``ns/name`` of a service named ``name``, ``name.ns`` or ``ns/name``."""
    if "/" in service:
        key = service
    elif "." in service:
        name, ns = service.split(".", 1)
        key = f"{ns}/{name}"
    else:
        matches = sorted(k for k in state.services if k.split("/", 1)[1] == service)
        if len(matches) > 1:
            raise RenderError(f"service {service!r} is ambiguous: {', '.join(matches)}; name it ns/name")
        key = matches[0] if matches else service
    if key not in state.services:
        raise RenderError(f"unknown service {service!r}; the inventory has: {', '.join(sorted(state.services))}")
    return key


def explain(state: MeshState, source: str, service: str, port: int | None, request: Request) -> Explanation:
    """What happens to ``request`` sent by workload ``source`` (``ns/name``) to ``service``. Raises
    :class:`RenderError` for an unknown workload or service, or a service the workload does not call."""
    if source.count("/") != 1:
        raise RenderError(f"--from must be NAMESPACE/WORKLOAD, got {source!r}")
    if source not in state.workloads:
        known = ", ".join(sorted(state.workloads)) or "none"
        raise RenderError(f"unknown workload {source!r}; the inventory has: {known}")
    key = _service_key(state, service)
    svc = state.services[key]
    if port is not None and port != svc.port:
        raise RenderError(f"service {key} has no port {port}; its port is {svc.port}")
    if not any(u.service == key for u in state.workloads[source].upstreams):
        raise RenderError(f"workload {source} does not call {key} (it is not one of its upstreams)")
    destinations = {f"{i.namespace}/{i.workload}" for i in svc.instances}
    translated = translate_mesh(state, only={source} | destinations)
    if source in translated.failed:
        raise RenderError(f"the config of {source} cannot be built: {translated.failed[source]}")
    cfg = translated.proxies[source]
    lis = next((o for o in cfg.outbound if o.service == svc.host), None)
    if lis is None or lis.protocol != "http":
        raise RenderError(f"{source} reaches {key} over TCP: there are no HTTP routes to explain")
    return _follow(translated.proxies, cfg, lis, svc.port, request)


def _follow(
    proxies: Mapping[str, ir.ProxyConfig], cfg: ir.ProxyConfig, lis: ir.OutboundListener, port: int, req: Request
) -> Explanation:
    path, query = normalize_path(req.path)
    headers = _headers(req)
    base = {
        "source": cfg.node.id,
        "source_identity": cfg.node.spiffe_id,
        "service": lis.service,
        "port": port,
        "request": req,
        "normalized_path": path,
    }
    route = next((r for r in lis.routes if route_matches(r.match, path, query, headers)), None)
    if route is None:
        return Explanation(**base, route=None, policy=None, status=404, outcome="route_not_found")  # type: ignore[arg-type]
    clusters = {c.name: c for c in cfg.clusters}
    common = {
        "route": route.name,
        "policy": route.provenance.ref if route.provenance else None,
        "response_headers": route.response_headers.set + route.response_headers.add,
        "fault": route.fault,
        "timeout_ms": route.timeout_ms,
        "idle_timeout_ms": route.idle_timeout_ms,
    }
    notes: list[str] = []
    if route.redirect is not None:
        return Explanation(
            **base,  # type: ignore[arg-type]
            **common,  # type: ignore[arg-type]
            status=route.redirect.status,
            outcome="redirect",
            redirect_location=_location(route, path, query, headers),
        )
    fault = route.fault
    if fault is not None and fault.delay_ms and fault.delay_percent:
        notes.append(f"{fault.delay_percent:g}% of requests are delayed {fault.delay_ms} ms (fault)")
    if fault is not None and fault.abort_status is not None and fault.abort_percent >= 100:
        return Explanation(**base, **common, status=fault.abort_status, outcome="fault_abort", notes=tuple(notes))  # type: ignore[arg-type]
    if fault is not None and fault.abort_status is not None and fault.abort_percent > 0:
        notes.append(f"{fault.abort_percent:g}% of requests are answered {fault.abort_status} (fault)")
    total = sum(c.weight for c in route.clusters) or 1
    backends = tuple(
        Backend(
            wc.cluster,
            wc.weight,
            round(100 * wc.weight / total, 2),
            tuple(sorted(e.instance for e in clusters[wc.cluster].endpoints)) if wc.cluster in clusters else (),
        )
        for wc in route.clusters
    )
    upstream_path = _rewritten(route, path) + (f"?{query}" if query else "")
    seen = dict(headers)
    for k in route.request_headers.remove:
        seen.pop(k.lower(), None)
    for k, v in route.request_headers.set + route.request_headers.add:
        seen[k.lower()] = v
    inbound_path = normalize_path(upstream_path)[0]
    access: list[Access] = []
    rate_limit: ir.RateLimit | None = None
    for b in backends:
        for instance in b.instances:
            dest = proxies.get(instance)
            if dest is None:
                continue
            target = next((i for i in dest.inbound if i.service == lis.service), None)
            if target is None:
                continue
            access.append(access_decision(target, instance, cfg.node.spiffe_id, inbound_path, seen))
            for r in target.routes:
                if r.rate_limit is not None and route_matches(r.match, inbound_path, query, seen):
                    rate_limit = rate_limit or r.rate_limit
                    break
    if rate_limit is not None:
        notes.append(
            f"local rate limit on each instance: {rate_limit.max_tokens} requests, then {rate_limit.tokens_per_fill}"
            f" per {rate_limit.fill_interval_ms} ms; beyond it {rate_limit.status}"
            + (" (shadow: counted, not enforced)" if rate_limit.shadow else "")
        )
    weighted = [b for b in backends if b.weight > 0]
    if not any(b.instances for b in weighted):
        status, outcome = 503, "no_healthy_upstream"
    elif access and not any(a.allowed for a in access):
        status, outcome = 403, "rbac_denied"
    else:
        status, outcome = 200, "upstream"
        if any(not a.allowed for a in access):
            notes.append("some destination instances deny this request (403 from those)")
    budget = next(
        (c.circuit_breakers.retry_budget for c in (clusters.get(b.cluster) for b in backends) if c is not None), None
    )
    return Explanation(
        **base,  # type: ignore[arg-type]
        **common,  # type: ignore[arg-type]
        status=status,
        outcome=outcome,
        backends=backends,
        upstream_path=upstream_path,
        upstream_host=route.host_rewrite,
        request_headers_set=route.request_headers.set + route.request_headers.add,
        request_headers_removed=route.request_headers.remove,
        retry=route.retry,
        retry_budget=budget,
        mirrors=route.mirrors,
        rate_limit=rate_limit,
        access=tuple(access),
        notes=tuple(notes),
    )


def _rewritten(route: ir.Route, path: str) -> str:
    if route.path_rewrite is None:
        return path
    kind, value = route.path_rewrite
    if kind == "full":
        return value
    prefix = route.match.path.value if route.match.path.kind == "prefix" else ""
    return value + path[len(prefix) :] if path.startswith(prefix) else path


def _location(route: ir.Route, path: str, query: str, headers: dict[str, str]) -> str:
    r = route.redirect
    assert r is not None
    if r.path is not None:
        new_path = r.path
    elif r.prefix is not None and route.match.path.kind == "prefix":
        new_path = r.prefix + path[len(route.match.path.value) :]
    else:
        new_path = path
    if query and "?" not in new_path:  # Envoy keeps the query (no strip_query), unless the new path sets one
        new_path += f"?{query}"
    scheme = r.scheme or "http"
    host = r.host or headers.get("host", "").rsplit(":", 1)[0] or "{host}"
    default_port = 443 if scheme == "https" else 80
    port = f":{r.port}" if r.port and r.port != default_port else ""
    if r.host is None and r.port is None and ":" in headers.get("host", ""):
        port = ":" + headers["host"].rsplit(":", 1)[1]
    return f"{scheme}://{host}{port}{new_path}"
