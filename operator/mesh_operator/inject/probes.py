"""Kubelet probes under STRICT mTLS.

Kubelet probes the pod IP in plaintext. Once inbound TCP is captured, an HTTP probe would reach Envoy's mTLS
listener and fail the handshake, and a TCP probe would always *succeed* (Envoy accepts every connection) — both
wrong. As Istio does through its agent, the injector rewrites every HTTP, TCP and gRPC probe of the app's
containers into an HTTP GET on the agent's health port (never captured), path ``/app-health/<container>/<kind>``,
and hands the original probes to the agent in the ``MESHWORK_APP_PROBES`` environment variable (JSON, keyed by
that path). The agent runs the original probe against ``127.0.0.1:<port>`` — loopback is never captured, so the
app is probed directly, in plaintext, exactly as kubelet would have — and answers 200 when it passes.

Why this and not excluding the probe ports from capture: excluding a port exposes the app on that port to
plaintext from anywhere in the cluster, bypassing mTLS and every AccessPolicy. The rewrite exposes only the
*result* of the configured probes (the agent probes nothing else), and keeps every app port behind mTLS.

``exec`` probes run inside the container and need nothing. Probes with an explicit ``host`` (not the pod) are
left alone, as are probes of a named port the container does not declare (with a warning; kubelet will fail
them as it would have).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

PROBES_ENV: Final = "MESHWORK_APP_PROBES"
KINDS: Final = (("livenessProbe", "livez"), ("readinessProbe", "readyz"), ("startupProbe", "startupz"))
_TIMING: Final = (
    "initialDelaySeconds",
    "periodSeconds",
    "timeoutSeconds",
    "successThreshold",
    "failureThreshold",
    "terminationGracePeriodSeconds",
)


def _port(container: dict[str, Any], port: Any) -> int | None:
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port and isinstance(p.get("containerPort"), int):
            return int(p["containerPort"])
    return None


def _original(container: dict[str, Any], probe: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The probe as the agent runs it, or (None, warning) when it must stay as it is."""
    timeout = probe.get("timeoutSeconds", 1)
    if "httpGet" in probe:
        h = probe["httpGet"]
        if h.get("host"):
            return None, None
        port = _port(container, h.get("port"))
        if port is None:
            return None, f"no container port named {h.get('port')!r}"
        http: dict[str, Any] = {"port": port, "path": h.get("path", "/"), "scheme": h.get("scheme", "HTTP")}
        if h.get("httpHeaders"):
            http["httpHeaders"] = h["httpHeaders"]
        return {"httpGet": http, "timeoutSeconds": timeout}, None
    if "tcpSocket" in probe:
        t = probe["tcpSocket"]
        if t.get("host"):
            return None, None
        port = _port(container, t.get("port"))
        if port is None:
            return None, f"no container port named {t.get('port')!r}"
        return {"tcpSocket": {"port": port}, "timeoutSeconds": timeout}, None
    if "grpc" in probe:
        g = probe["grpc"]
        grpc: dict[str, Any] = {"port": g.get("port")}
        if g.get("service"):
            grpc["service"] = g["service"]
        return {"grpc": grpc, "timeoutSeconds": timeout}, None
    return None, None  # exec: runs in the container


def rewrite(
    containers: list[dict[str, Any]],
    health_port: int,
    path_prefix: str = "spec.containers",
    select: Callable[[dict[str, Any]], bool] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    """New containers (copies) with probes rewritten, the agent's probe table, and warnings. ``select``: which
    containers to rewrite (default all; the others are returned as they are)."""
    table: dict[str, Any] = {}
    warnings: list[str] = []
    out = []
    for i, c in enumerate(containers):
        if select is not None and not select(c):
            out.append(c)
            continue
        c = dict(c)
        for field, kind in KINDS:
            probe = c.get(field)
            if not isinstance(probe, dict):
                continue
            original, warning = _original(c, probe)
            if warning:
                warnings.append(f"{path_prefix}[{i}].{field}: left as it is: {warning}")
            if original is None:
                continue
            path = f"/app-health/{c.get('name', i)}/{kind}"
            table[path] = original
            new = {k: probe[k] for k in _TIMING if k in probe}
            new["httpGet"] = {"path": path, "port": health_port, "scheme": "HTTP"}
            c[field] = {"httpGet": new.pop("httpGet"), **new}
        out.append(c)
    return out, table, warnings


def probes_env(table: dict[str, Any]) -> str:
    return json.dumps(table, sort_keys=True, separators=(",", ":"))
