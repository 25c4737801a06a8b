"""Rules of global rate limits (``spec.rules[].rateLimit.global``) beyond their schema."""

from __future__ import annotations

from typing import Any

from mesh_operator.api.common import duration_ms
from mesh_operator.api.traffic_policy import TrafficPolicy
from mesh_operator.validation.violations import Collector


def validate_rate_limits(obj: Any, c: Collector) -> None:
    if not isinstance(obj, TrafficPolicy):
        return
    for i, rule in enumerate(obj.spec.rules):
        rl = rule.rate_limit
        if rl is None:
            continue
        rc = c.at("spec", "rules", i, "rateLimit")
        if rl.max_tokens is None and rl.global_ is None:
            rc.error(None, "set maxTokens (a local limit), global, or both")
        g = rl.global_
        if g is None:
            continue
        gc = rc.at("global")
        if duration_ms(g.timeout) < 1:
            gc.error("timeout", "must be more than 0")
        names = [d.name for d in g.descriptors]
        if len(names) != len(set(names)):
            gc.error("descriptors", "descriptor names must be unique")
        for j, d in enumerate(g.descriptors):
            dc = gc.at("descriptors", j)
            for k, e in enumerate(d.entries):
                if sum(x is not None for x in (e.header, e.source_identity, e.remote_address)) != 1:
                    dc.at("entries", k).error(None, "set exactly one of header, sourceIdentity, remoteAddress")
            kinds = [
                (e.header or "").lower() or ("sourceIdentity" if e.source_identity else "remoteAddress")
                for e in d.entries
            ]
            if len(kinds) != len(set(kinds)):
                dc.error("entries", "each entry may appear once")
