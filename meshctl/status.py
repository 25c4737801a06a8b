"""``meshctl status`` and ``meshctl proxy-config``: what every proxy has applied, from the control plane's view."""

from __future__ import annotations

import argparse
import time
from typing import Any

from meshctl import cluster
from meshctl.admin_client import AdminUnavailable, get
from meshctl.output import dump, err, table
from xds_server.preflight import reason_line

_TYPES = {
    "listeners": "Listener",
    "routes": "RouteConfiguration",
    "clusters": "Cluster",
    "endpoints": "ClusterLoadAssignment",
    "secrets": "Secret",
}
SYNCED, STALE, REJECTING, DISCONNECTED = "SYNCED", "STALE", "REJECTING", "NOT CONNECTED"
#: the control plane could not build the proxy's new config: it keeps what it has
FAILED = "FAILED"


def proxy_rows(
    sync: dict[str, Any], desired: dict[str, str], failed: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """One row per proxy the control plane knows: connected ones and expected ones that are not. A proxy is
    SYNCED only when it has ACKed the config the control plane wants it to have, and that config exists."""
    failed = failed or {}
    rows: list[dict[str, Any]] = []
    for node in sorted(set(sync) | set(desired) | set(failed)):
        p = sync.get(node)
        if p is None:
            rows.append(
                {
                    "proxy": node,
                    "state": FAILED if node in failed else DISCONNECTED,
                    "stream": "",
                    "acked": "",
                    "desired": desired.get(node, ""),
                    "failed": failed.get(node, ""),
                }
            )
            continue
        nacks = [
            {"type": t, "version": s["last_nack"]["version"], "error": s["last_nack"]["error"]}
            for t, s in p["types"].items()
            if s.get("rejecting")
        ]
        wanted = desired.get(node, "")
        in_sync = bool(p["in_sync"]) and bool(wanted) and p["acked_version"] == wanted
        state = REJECTING if nacks else FAILED if node in failed else SYNCED if in_sync else STALE
        rows.append(
            {
                "proxy": node,
                "state": state,
                "stream": p["kind"],
                "identity": p.get("peer", ""),
                "connected_for": _age(p["connected_since"]),
                "acked": p["acked_version"],
                "desired": p["desired_version"] or desired.get(node, ""),
                "rejected": nacks,
                "failed": failed.get(node, ""),
            }
        )
    return rows


def _from_cluster(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """Policies from the API; the proxy table from the control plane (None and the reason when unreachable)."""
    api = cluster.api_client(args)
    namespace = None if args.all_namespaces else cluster.namespace_of(args)
    policies = cluster.policies(api, namespace)
    try:
        sync = cluster.admin(api, args, "/debug/syncz")["proxies"]
        policyz = cluster.admin(api, args, "/debug/policyz")
    except AdminUnavailable as e:
        return {"policies": policies, "desired": {}, "problems": []}, {}, str(e)
    if namespace:
        sync = {n: p for n, p in sync.items() if n.startswith(f"{namespace}/")}
        policyz["desired"] = {n: v for n, v in policyz.get("desired", {}).items() if n.startswith(f"{namespace}/")}
    return {**policyz, "policies": policies}, sync, None


def status(args: argparse.Namespace) -> int:
    """Exit 0 only when everything is in force: every proxy SYNCED, every policy accepted and applied, no
    refused object, no control-plane problem. 1 otherwise; 2 when the control plane cannot be reached."""
    unreachable = None
    try:
        if cluster.wants_cluster(args):
            policyz, sync, unreachable = _from_cluster(args)
        else:
            sync = get(args.admin, "/debug/syncz")["proxies"]
            policyz = get(args.admin, "/debug/policyz")
    except AdminUnavailable as e:
        err(str(e))
        return 2
    if unreachable:
        err(f"proxy table unavailable: {unreachable}")
    rows = proxy_rows(sync, policyz.get("desired", {}), policyz.get("failed", {}))
    problems = policyz.get("problems", [])
    policies = policyz.get("policies", {})
    unhealthy = [r for r in rows if r["state"] != SYNCED]
    refused = {name: p for name, p in policies.items() if p["accepted"]["status"] != "True"}
    rejected = {name: p for name, p in policies.items() if p["rejected"]}
    if args.output != "table":
        dump(
            {"proxies": rows, "policies": policies, "problems": problems, "warnings": policyz.get("warnings", [])},
            args.output,
        )
    else:
        table(
            ["PROXY", "STATE", "STREAM", "CONNECTED", "ACKED", "DESIRED"],
            [[r["proxy"], r["state"], r["stream"], r.get("connected_for", ""), r["acked"], r["desired"]] for r in rows],
        )
        for r in rows:
            for n in r.get("rejected", []):
                print(f"\n{r['proxy']} rejected {n['type']} version {n['version']}:\n  {reason_line(n['error'])}")
            if r.get("failed"):
                print(f"\n{r['proxy']} keeps the config it has: {r['failed']}")
        if policies:
            print()
            table(
                ["POLICY", "ACCEPTED", "REASON", "APPLIED", "STATUS"],
                [
                    [
                        name,
                        p["accepted"]["status"],
                        p["accepted"]["reason"],
                        f"{p['applied']}/{p['proxies']}",
                        p.get("summary", ""),
                    ]
                    for name, p in sorted(policies.items())
                ],
            )
        for name, p in sorted(refused.items()):
            print(f"\n{name} is not accepted: {p['accepted']['message']}")
        for name, p in sorted(rejected.items()):
            for proxy, reason in sorted(p.get("rejected_reason", p["rejected"]).items()):
                print(f"\n{name} rejected by {proxy}: {reason}")
        for problem in problems:
            print(f"\ncontrol plane problem: {problem}")
        for warning in policyz.get("warnings", []):
            print(f"\nwarning: {warning}")
        if rejected or any(r.get("rejected") for r in rows):
            print("\n(-o json shows Envoy's full error texts)")
    return 1 if unhealthy or problems or refused or rejected else 0


def proxy_config(args: argparse.Namespace) -> int:
    node = args.node
    if cluster.wants_cluster(args) and "/" not in node:
        node = f"{cluster.namespace_of(args)}/{node}"
    query = {"node": node}
    if args.type:
        query["type"] = _TYPES[args.type]
    try:
        if cluster.wants_cluster(args):
            doc = cluster.admin(cluster.api_client(args), args, "/debug/config_dump", **query)
        else:
            doc = get(args.admin, "/debug/config_dump", **query)
    except AdminUnavailable as e:
        err(str(e))
        return 2
    if args.output != "table":
        dump(doc, args.output)
        return 0
    rows = [
        [kind, item["name"], item["version"]] for kind, group in doc["resources"].items() for item in group["items"]
    ]
    table(["TYPE", "NAME", "VERSION"], rows)
    return 0


def _age(since: float) -> str:
    seconds = max(0, int(time.time() - since))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"
