"""``meshctl status`` and ``meshctl proxy-config``: what every proxy has applied, from the control plane's view."""

from __future__ import annotations

import argparse
import time
from typing import Any

from meshctl import cluster
from meshctl.admin_client import AdminUnavailable, get
from meshctl.output import dump, err, table

_TYPES = {
    "listeners": "Listener",
    "routes": "RouteConfiguration",
    "clusters": "Cluster",
    "endpoints": "ClusterLoadAssignment",
    "secrets": "Secret",
}
SYNCED, STALE, REJECTING, DISCONNECTED = "SYNCED", "STALE", "REJECTING", "NOT CONNECTED"


def proxy_rows(sync: dict[str, Any], desired: dict[str, str]) -> list[dict[str, Any]]:
    """One row per proxy the control plane knows: connected ones and expected ones that are not."""
    rows: list[dict[str, Any]] = []
    for node in sorted(set(sync) | set(desired)):
        p = sync.get(node)
        if p is None:
            rows.append({"proxy": node, "state": DISCONNECTED, "stream": "", "acked": "", "desired": desired[node]})
            continue
        nacks = [
            {"type": t, "version": s["last_nack"]["version"], "error": s["last_nack"]["error"]}
            for t, s in p["types"].items()
            if s.get("rejecting")
        ]
        state = REJECTING if nacks else SYNCED if p["in_sync"] else STALE
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
    rows = proxy_rows(sync, policyz.get("desired", {}))
    problems = policyz.get("problems", [])
    policies = policyz.get("policies", {})
    rejecting = [r for r in rows if r["state"] == REJECTING]
    if args.output != "table":
        dump({"proxies": rows, "policies": policies, "problems": problems}, args.output)
    else:
        table(
            ["PROXY", "STATE", "STREAM", "CONNECTED", "ACKED", "DESIRED"],
            [[r["proxy"], r["state"], r["stream"], r.get("connected_for", ""), r["acked"], r["desired"]] for r in rows],
        )
        for r in rejecting:
            for n in r["rejected"]:
                print(f"\n{r['proxy']} rejected {n['type']} version {n['version']}:\n  {n['error']}")
        if policies:
            print()
            table(
                ["POLICY", "ACCEPTED", "REASON", "APPLIED", "REJECTED BY"],
                [
                    [
                        name,
                        p["accepted"]["status"],
                        p["accepted"]["reason"],
                        f"{p['applied']}/{p['proxies']}",
                        ", ".join(sorted(p["rejected"])) or "-",
                    ]
                    for name, p in sorted(policies.items())
                ],
            )
        for problem in problems:
            print(f"\ncontrol plane problem: {problem}")
    return 1 if rejecting or problems else 0


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
