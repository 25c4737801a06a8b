"""Mesh analysis with stable finding codes, the pure half of ``meshctl check`` (like ``istioctl analyze``).

Codes never change meaning; a retired check keeps its number unused.

====== ======= ===============================================================================================
code   level   finding
====== ======= ===============================================================================================
MW0001 error   a policy targets nothing: its target service does not exist
MW0002 warning a rule can never match: an earlier rule of the same policy matches everything it would
MW0003 warning retry amplification: attempts × per-try timeout beyond the route timeout, or retries at several
               hops of one call chain (the attempts multiply)
MW0004 error   conflicting policies: two policies of one kind target the same service (the older one wins)
MW0005 error   an AccessPolicy that allows nobody: no workload of the mesh has an identity its ALLOW rules name
MW0006 warning a Service the Mesh's sidecarEgress lists does not exist (its sidecars get it once it does)
====== ======= ===============================================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from mesh_operator.analysis.explain import principal_matches
from mesh_operator.translate import MeshState, MeshTranslation, translate_mesh
from mesh_operator.translate.scope import missing_services
from mesh_operator.translate.status import CONFLICTED, TARGET_NOT_FOUND
from xds_server import ir

__all__ = ["CODES", "Finding", "analyze"]

CODES: dict[str, tuple[Literal["error", "warning"], str]] = {
    "MW0001": ("error", "policy targets nothing"),
    "MW0002": ("warning", "rule shadowed by an earlier rule"),
    "MW0003": ("warning", "retry amplification"),
    "MW0004": ("error", "conflicting policies"),
    "MW0005": ("error", "AccessPolicy allows nobody"),
    "MW0006": ("warning", "sidecarEgress lists a missing Service"),
}


@dataclass(frozen=True, order=True)
class Finding:
    code: str
    #: ``Kind/ns/name`` of the policy it is about (or the proxy / service).
    subject: str
    message: str

    @property
    def level(self) -> str:
        return CODES[self.code][0]

    def __str__(self) -> str:
        return f"{self.code} {self.level:<7} {self.subject}: {self.message}"


def analyze(state: MeshState, translated: MeshTranslation | None = None) -> list[Finding]:
    """Every finding, sorted and without duplicates (a route shared by many callers is reported once)."""
    t = translated if translated is not None else translate_mesh(state)
    found: set[Finding] = set()
    found.update(_outcomes(t))
    for cfg in t.proxies.values():
        for lis in cfg.outbound:
            found.update(_shadowed(lis.routes))
            found.update(_retry_timeouts(lis.routes, lis.service))
    found.update(_retry_chains(state, t))
    found.update(_allows_nobody(t))
    found.update(
        Finding("MW0006", f"Mesh/{state.mesh.metadata.name}", f"{v.path}: {v.message}") for v in missing_services(state)
    )
    return sorted(found)


def _outcomes(t: MeshTranslation) -> Iterator[Finding]:
    for key, outcome in t.outcomes.items():
        if outcome.reason == TARGET_NOT_FOUND:
            yield Finding("MW0001", str(key), outcome.message or "its target service does not exist")
        elif outcome.reason == CONFLICTED:
            yield Finding("MW0004", str(key), outcome.message)


def _catch_all(m: ir.RouteMatch) -> bool:
    return not m.method and not m.headers and not m.query and m.path.kind == "prefix"


def _covers(earlier: ir.RouteMatch, later: ir.RouteMatch) -> bool:
    """``earlier`` matches every request ``later`` matches (conservatively: a bare path prefix)."""
    if not _catch_all(earlier):
        return False
    if later.path.kind == "regex":
        return earlier.path.value == "/"
    return later.path.value.startswith(earlier.path.value)


def _shadowed(routes: Iterable[ir.Route]) -> Iterator[Finding]:
    seen: list[ir.Route] = []
    for r in routes:
        if r.provenance is not None:
            for e in seen:
                if e.provenance == r.provenance and _covers(e.match, r.match):
                    rule, earlier = r.name.rsplit("/", 1)[-1], e.name.rsplit("/", 1)[-1]
                    yield Finding(
                        "MW0002",
                        r.provenance.policy,
                        f"rule {rule!r} can never match: rule {earlier!r} before it matches every request it would",
                    )
                    break
        seen.append(r)


def _retry_timeouts(routes: Iterable[ir.Route], service: str) -> Iterator[Finding]:
    for r in routes:
        rt = r.retry
        if rt is None or rt.per_try_timeout_ms is None or r.timeout_ms is None or r.redirect is not None:
            continue
        tries = rt.attempts + 1
        if tries * rt.per_try_timeout_ms > r.timeout_ms:
            subject = rt.provenance.policy if rt.provenance else (r.provenance.policy if r.provenance else service)
            yield Finding(
                "MW0003",
                subject,
                f"route {r.name}: {tries} tries × {rt.per_try_timeout_ms} ms per try exceed the route timeout of "
                f"{r.timeout_ms} ms: the last retries can never complete",
            )


def _max_attempts(lis: ir.OutboundListener) -> tuple[int, ir.Provenance | None]:
    best: tuple[int, ir.Provenance | None] = (0, None)
    for r in lis.routes:
        if r.retry is not None and r.retry.provenance is not None and r.retry.attempts > best[0]:
            best = (r.retry.attempts, r.retry.provenance)
    return best


def _retry_chains(state: MeshState, t: MeshTranslation) -> Iterator[Finding]:
    """A retries calls to B (by a RetryPolicy) and B retries calls to C: one failure at C costs up to
    (1 + a) × (1 + b) tries. Mesh-default retries are not counted (they are bounded by the retry budget)."""
    retrying: dict[str, list[tuple[str, int, ir.Provenance]]] = {}
    for node, cfg in t.proxies.items():
        for lis in cfg.outbound:
            attempts, prov = _max_attempts(lis)
            if prov is not None:
                retrying.setdefault(node, []).append((lis.service, attempts, prov))
    by_host = {svc.host: svc for svc in state.services.values()}
    for caller, calls in sorted(retrying.items()):
        for host, a, first in calls:
            svc = by_host.get(host)
            for inst in svc.instances if svc else ():
                for next_host, b, second in retrying.get(f"{inst.namespace}/{inst.workload}", []):
                    yield Finding(
                        "MW0003",
                        second.policy,
                        f"retries at two hops: {caller} -> {host} ({first.policy}, {a} retries) -> {next_host} "
                        f"({b} retries): one failing request costs up to {(1 + a) * (1 + b)} tries",
                    )


def _allows_nobody(t: MeshTranslation) -> Iterator[Finding]:
    identities = sorted({cfg.node.spiffe_id for cfg in t.proxies.values()})
    for cfg in t.proxies.values():
        for lis in cfg.inbound:
            for p in lis.rbac:
                if p.action != "allow" or p.shadow:
                    continue
                principals = [pr for rule in p.rules for pr in rule.principals]
                if any(not rule.principals for rule in p.rules) or any(pr.request or pr.any for pr in principals):
                    continue
                if not any(principal_matches(pr, i) for pr in principals for i in identities):
                    yield Finding(
                        "MW0005",
                        p.provenance.policy,
                        "no workload of the mesh has an identity its ALLOW rules name: every request to "
                        f"{lis.service} is denied",
                    )
