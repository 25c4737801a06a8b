"""Rules a TrafficPolicy must follow beyond its schema."""

from __future__ import annotations

from collections import Counter

from mesh_operator.api.common import duration_ms
from mesh_operator.api.traffic_policy import HeaderModifier, Match, Rule, TrafficPolicy
from mesh_operator.validation.matchers import validate_value_match
from mesh_operator.validation.regex import regex_problem
from mesh_operator.validation.violations import Collector

MIN_FILL_INTERVAL_MS = 50

#: Headers Envoy refuses to let route config edit (it would NACK the route).
_PROTECTED_HEADERS = {"host", "te", "connection", "upgrade", "keep-alive", "transfer-encoding", "proxy-connection"}


def validate_traffic_policy(policy: TrafficPolicy, c: Collector) -> None:
    spec = policy.spec
    s = c.at("spec")

    subsets = [sub.name for sub in spec.subsets]
    for name, n in Counter(subsets).items():
        if n > 1:
            s.error("subsets", f"subset name {name!r} is used {n} times")
    rule_names = [r.name for r in spec.rules if r.name]
    for name, n in Counter(rule_names).items():
        if n > 1:
            s.error("rules", f"rule name {name!r} is used {n} times")

    seen: dict[str, int] = {}
    catch_all: int | None = None
    for i, rule in enumerate(spec.rules):
        rc = s.at("rules", i)
        _validate_rule(rule, set(subsets), rc)
        for key in _match_keys(rule):
            if key in seen:
                rc.error("matches", f"conflicts with rules[{seen[key]}]: the same match is already routed there")
            else:
                seen[key] = i
        if catch_all is not None:
            rc.warning(None, f"unreachable: rules[{catch_all}] before it matches every request")
        elif not rule.matches or any(_is_catch_all(m) for m in rule.matches):
            catch_all = i

    if spec.load_balancer is not None:
        lb, lc = spec.load_balancer, s.at("loadBalancer")
        if lb.hash_on and lb.type not in ("RingHash", "Maglev"):
            lc.error("hashOn", f"hash keys need type RingHash or Maglev, not {lb.type}")
        if lb.type in ("RingHash", "Maglev") and not lb.hash_on:
            lc.warning("hashOn", f"{lb.type} without hash keys spreads requests randomly")
        for j, h in enumerate(lb.hash_on):
            set_fields = [f for f in ("header", "cookie", "source_ip") if getattr(h, f) not in (None, False)]
            if len(set_fields) != 1:
                lc.at("hashOn", j).error(None, "set exactly one of header, cookie, sourceIp")
            if h.cookie_ttl is not None and h.cookie is None:
                lc.at("hashOn", j).error("cookieTtl", "only valid with cookie")

    if spec.health_check is not None:
        hc, hcc = spec.health_check, s.at("healthCheck")
        kinds = [k for k in ("http", "tcp", "grpc") if getattr(hc, k) is not None]
        if len(kinds) != 1:
            hcc.error(None, "set exactly one of http, tcp, grpc")
        # interval, timeout > 0: Envoy's own rules (validation/envoy.py)
        if 0 < duration_ms(hc.interval) < duration_ms(hc.timeout):
            hcc.error("timeout", "must not exceed interval")
        if hc.http is not None:
            for j, r in enumerate(hc.http.expected_statuses):
                if r.start > r.end:
                    hcc.at("http", "expectedStatuses", j).error(None, f"start {r.start} is after end {r.end}")

    if spec.timeouts is not None:
        for field in ("request", "idle"):  # connect > 0 is Envoy's own rule (validation/envoy.py)
            value = getattr(spec.timeouts, field)
            if value is not None and duration_ms(value) <= 0:
                s.at("timeouts").error(field, "must be greater than 0")


def _validate_rule(rule: Rule, subsets: set[str], c: Collector) -> None:
    for j, m in enumerate(rule.matches):
        _validate_match(m, c.at("matches", j))

    if rule.redirect is not None:
        if rule.backends:
            c.error("redirect", "a rule either redirects or routes to backends, not both")
        for other in ("mirror", "rewrite", "fault", "rate_limit"):
            if getattr(rule, other) is not None and other in ("mirror", "rewrite"):
                c.error("redirect", f"cannot be combined with {other}")
        rd = rule.redirect
        if rd.path is not None and rd.prefix is not None:
            c.at("redirect").error(None, "set path or prefix, not both")
        if rd.prefix is not None and not _all_prefix_matches(rule):
            c.at("redirect").error("prefix", "needs every match of the rule to be a PathPrefix match")

    if rule.backends:
        total = sum(b.weight for b in rule.backends)
        if total != 100:
            c.error("backends", f"weights must sum to 100 (they sum to {total})")
        names = [b.subset or "" for b in rule.backends]
        for name, n in Counter(names).items():
            if n > 1:
                c.error("backends", f"backend {name or '(all instances)'!r} is listed {n} times")
    for j, b in enumerate(rule.backends):
        if b.subset is not None and b.subset not in subsets:
            c.at("backends", j).error("subset", f"unknown subset {b.subset!r}; declare it in spec.subsets")
    if rule.mirror is not None and rule.mirror.subset is not None and rule.mirror.subset not in subsets:
        c.at("mirror").error("subset", f"unknown subset {rule.mirror.subset!r}; declare it in spec.subsets")

    if rule.fault is not None and rule.fault.delay is None and rule.fault.abort is None:
        c.at("fault").error(None, "set delay, abort or both")

    if rule.rewrite is not None and rule.rewrite.path is not None:
        if rule.rewrite.path.type == "ReplacePrefixMatch" and not _all_prefix_matches(rule):
            c.at("rewrite", "path").error("type", "ReplacePrefixMatch needs every match to be a PathPrefix match")
        if not rule.rewrite.path.value.startswith("/"):
            c.at("rewrite", "path").error("value", "must start with /")

    for field, mod in (("requestHeaders", rule.request_headers), ("responseHeaders", rule.response_headers)):
        if mod is not None:
            _validate_header_modifier(mod, c.at(field))

    if rule.timeouts is not None:
        for field in ("request", "idle"):
            value = getattr(rule.timeouts, field)
            if value is not None and duration_ms(value) <= 0:
                c.at("timeouts").error(field, "must be greater than 0")
    if rule.rate_limit is not None:
        rl = rule.rate_limit
        if duration_ms(rl.fill_interval) < MIN_FILL_INTERVAL_MS:
            # Envoy's local rate limiter refuses anything shorter (it would NACK the route).
            c.at("rateLimit").error("fillInterval", f"must be at least {MIN_FILL_INTERVAL_MS}ms")
        if rl.max_tokens is not None and rl.tokens_per_fill > rl.max_tokens:
            c.at("rateLimit").warning("tokensPerFill", "is more than maxTokens; the bucket never holds more")


def _validate_match(m: Match, c: Collector) -> None:
    if m.path is not None:
        if m.path.type == "RegularExpression":
            if problem := regex_problem(m.path.value):
                c.at("path").error("value", problem)
        elif not m.path.value.startswith("/"):
            c.at("path").error("value", "must start with /")
    for k, h in enumerate(m.headers):
        validate_value_match(h.type, h.value, c.at("headers", k))
    for k, q in enumerate(m.query_params):
        validate_value_match(q.type, q.value, c.at("queryParams", k))
    names = [h.name.lower() for h in m.headers]
    for name, n in Counter(names).items():
        if n > 1:
            c.error("headers", f"header {name!r} is matched {n} times")


def _validate_header_modifier(mod: HeaderModifier, c: Collector) -> None:
    for field, headers in (("set", mod.set), ("add", mod.add)):
        for j, h in enumerate(headers):
            if h.name.lower() in _PROTECTED_HEADERS:
                c.at(field, j).error("name", f"{h.name!r} cannot be edited here (use rewrite.hostname for host)")
    for j, name in enumerate(mod.remove):
        if name.lower() in _PROTECTED_HEADERS or name.startswith(":"):
            c.at("remove", j).error(None, f"{name!r} cannot be removed")
    set_names = [h.name.lower() for h in mod.set]
    for name, n in Counter(set_names).items():
        if n > 1:
            c.error("set", f"header {name!r} is set {n} times")


def _all_prefix_matches(rule: Rule) -> bool:
    return bool(rule.matches) and all(m.path is not None and m.path.type == "PathPrefix" for m in rule.matches)


def _is_catch_all(m: Match) -> bool:
    no_path = m.path is None or (m.path.type == "PathPrefix" and m.path.value == "/")
    return no_path and m.method is None and not m.headers and not m.query_params


def _match_keys(rule: Rule) -> list[str]:
    return [m.model_dump_json() for m in rule.matches] if rule.matches else [Match().model_dump_json()]
