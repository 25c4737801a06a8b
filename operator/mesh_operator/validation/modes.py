"""``spec.mode`` (Enforce / Shadow / Off) on every policy kind: Shadow only where Envoy can measure without acting.

Which kinds support Shadow (docs/policy-modes.md):

* AccessPolicy: yes (RBAC shadow rules, counted per policy).
* AuthenticationPolicy: yes (tokens verified, failures counted per policy, nothing refused).
* TrafficPolicy: not as a whole (routing cannot be "evaluated without acting"); each local rate limit can be
  shadowed with ``rules[].rateLimit.mode: Shadow`` and each global one with ``rules[].rateLimit.global.mode``.
* RetryPolicy: no (a retry either happens or it does not).

``Off`` is valid on every kind: the policy is validated and keeps its status, but no proxy's config carries it.
"""

from __future__ import annotations

from typing import Any

from mesh_operator.validation.violations import Collector

#: Kind -> why Shadow has no meaning there (kinds that support Shadow are absent).
NO_SHADOW: dict[str, str] = {
    "TrafficPolicy": "routing cannot be shadowed; use Enforce or Off, or rules[].rateLimit.mode: Shadow",
    "RetryPolicy": "a retry cannot be shadowed; use Enforce or Off",
}


def validate_mode(obj: Any, c: Collector) -> None:
    spec = getattr(obj, "spec", None)
    why = NO_SHADOW.get(getattr(obj, "kind", ""))
    if why is not None and getattr(spec, "mode", None) == "Shadow":
        c.at("spec").error("mode", why)
