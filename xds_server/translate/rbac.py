"""Access policies (``envoy.filters.http.rbac`` / ``envoy.filters.network.rbac``) on inbound listeners.

Semantics: DENY wins over ALLOW, and once any enforced ALLOW policy exists, a request no ALLOW policy matches is
denied. Envoy's RBAC config has one action per filter, so two filters run in this order:

1. ``meshwork.rbac.deny``  (action DENY: a match is refused; everything else passes on)
2. ``meshwork.rbac.allow`` (action ALLOW: only a match passes; present only when ALLOW policies exist)

Shadow policies (``shadow=True``) never deny: they go into ``shadow_rules`` of the filter of their action,
together with the enforced policies of that action, so the shadow result answers "what if these policies were
enforced too?". Counters and dynamic metadata keys carry a prefix per filter (``deny_``, ``allow_``,
``shadow_deny_``, ``shadow_allow_``) so they do not overwrite each other under the shared
``envoy.filters.http.rbac`` metadata namespace.

Provenance: every entry of the ``policies`` map is keyed ``Kind/namespace/name@generation#rule``; Envoy reports
the matched key in ``%RESPONSE_CODE_DETAILS%`` (``rbac_access_denied_matched_policy[<key>]``), in the
``*effective_policy_id`` metadata and, with ``track_per_rule_stats``, in per-policy counters.

Paths are matched with ``url_path`` (path without query) on the path *after* HCM normalization
(normalize_path, merge_slashes, escaped-slash handling; see :mod:`.hcm`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from envoy_data_plane.envoy.config.listener.v3 import Filter
from envoy_data_plane.envoy.config.rbac.v3 import (
    Permission,
    PermissionSet,
    Policy,
    Principal,
    PrincipalAuthenticated,
    Rbac,
    RbacAction,
)
from envoy_data_plane.envoy.extensions.filters.http.rbac.v3 import Rbac as HttpRbac
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import HttpFilter
from envoy_data_plane.envoy.extensions.filters.network.rbac.v3 import Rbac as NetworkRbac
from envoy_data_plane.envoy.type.matcher.v3 import StringMatcher

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate import jwt, matchers
from xds_server.translate._common import pack
from xds_server.translate._memo import memoize

DENY_FILTER: Final = "meshwork.rbac.deny"
ALLOW_FILTER: Final = "meshwork.rbac.allow"
METADATA_NAMESPACE: Final = "envoy.filters.http.rbac"


def policy_key(p: ir.RbacPolicy, rule: ir.AccessRule) -> str:
    return f"{p.provenance.ref}#{rule.name}"


def principal(p: ir.Principal) -> Principal:
    if p.request is not None:
        return jwt.principal(p.request)
    if p.spiffe_exact is not None:
        return new(
            Principal,
            authenticated=new(PrincipalAuthenticated, principal_name=new(StringMatcher, exact=p.spiffe_exact)),
        )
    if p.spiffe_prefix is not None:
        return new(
            Principal,
            authenticated=new(PrincipalAuthenticated, principal_name=new(StringMatcher, prefix=p.spiffe_prefix)),
        )
    return new(Principal, any=True)


def _any_of(rules: list[Permission]) -> Permission:
    return rules[0] if len(rules) == 1 else new(Permission, or_rules=new(PermissionSet, rules=rules))


def permission(r: ir.RequestMatch) -> Permission:
    parts: list[Permission] = []
    if r.paths:
        parts.append(_any_of([new(Permission, url_path=matchers.path(p, ignore_case=r.ignore_case)) for p in r.paths]))
    if r.methods:
        parts.append(_any_of([new(Permission, header=matchers.method(m)) for m in r.methods]))
    parts.extend(new(Permission, header=matchers.header(h)) for h in r.headers)
    if not parts:
        return new(Permission, any=True)
    return parts[0] if len(parts) == 1 else new(Permission, and_rules=new(PermissionSet, rules=parts))


def policy(rule: ir.AccessRule, *, tcp: bool = False, action: str = "allow") -> Policy | None:
    """One RBAC policy for one rule. On TCP listeners HTTP attributes cannot be seen: a DENY rule that needs them
    denies the principal outright (fail closed), an ALLOW rule that needs them never matches (``None``)."""
    principals = [principal(p) for p in rule.principals] or [new(Principal, any=True)]
    # A TCP listener sees no JWT either: a rule on request principals is treated like one on HTTP attributes.
    if tcp and (rule.requests or any(p.request is not None for p in rule.principals)):
        if action == "allow":
            return None
        return new(Policy, principals=principals, permissions=[new(Permission, any=True)])
    permissions = [permission(r) for r in rule.requests] or [new(Permission, any=True)]
    return new(Policy, principals=principals, permissions=permissions)


def rules_of(policies: Iterable[ir.RbacPolicy], action: str, *, tcp: bool = False) -> Rbac:
    entries: dict[str, Policy] = {}
    for p in policies:
        for rule in p.rules:
            pol = policy(rule, tcp=tcp, action=action)
            if pol is not None:
                entries[policy_key(p, rule)] = pol
    return new(
        Rbac,
        action=RbacAction.DENY if action == "deny" else RbacAction.ALLOW,
        policies=dict(sorted(entries.items())),
    )


def _split(policies: tuple[ir.RbacPolicy, ...], action: str) -> tuple[list[ir.RbacPolicy], list[ir.RbacPolicy]] | None:
    enforced = [p for p in policies if p.action == action and not p.shadow]
    shadow = [p for p in policies if p.action == action and p.shadow]
    if not enforced and not shadow:
        return None
    return enforced, shadow


@memoize(4096)
def http_filters(policies: tuple[ir.RbacPolicy, ...]) -> tuple[HttpFilter, ...]:
    """The RBAC HTTP filters for an inbound listener, DENY first. Empty when there are no policies."""
    out: list[HttpFilter] = []
    for action, name in (("deny", DENY_FILTER), ("allow", ALLOW_FILTER)):
        split = _split(policies, action)
        if split is None:
            continue
        enforced, shadow = split
        cfg = new(
            HttpRbac,
            rules=rules_of(enforced, action) if enforced else None,
            rules_stat_prefix=f"{action}_",
            shadow_rules=rules_of(enforced + shadow, action) if shadow else None,
            shadow_rules_stat_prefix=f"shadow_{action}_" if shadow else "",
            track_per_rule_stats=True,
        )
        out.append(new(HttpFilter, name=name, typed_config=pack(cfg)))
    return tuple(out)


@memoize(4096)
def network_filters(policies: tuple[ir.RbacPolicy, ...], stat_prefix: str) -> tuple[Filter, ...]:
    """The same policies for a TCP inbound listener (principals only; see :func:`policy`)."""
    out: list[Filter] = []
    for action in ("deny", "allow"):
        split = _split(policies, action)
        if split is None:
            continue
        enforced, shadow = split
        cfg = new(
            NetworkRbac,
            stat_prefix=f"{stat_prefix}_{action}",
            rules=rules_of(enforced, action, tcp=True) if enforced else None,
            shadow_rules=rules_of(enforced + shadow, action, tcp=True) if shadow else None,
            shadow_rules_stat_prefix=f"shadow_{action}_" if shadow else "",
        )
        out.append(new(Filter, name=f"meshwork.rbac.{action}", typed_config=pack(cfg)))
    return tuple(out)
