"""``meshctl diff -f PATH... [--against DIR|cluster]``: what applying the files would change on every proxy.

The files are laid over the current mesh (the documents in DIR) the way ``kubectl apply`` lays objects over a
cluster: an object with the same kind, namespace and name replaces the current one, new objects are added. Exit
codes as ``kubectl diff``: 0 no change, 1 changes, 2 an error (unreadable files, broken YAML, invalid objects).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any, TextIO

from mesh_operator.analysis.diff import MeshDiff, diff_states
from mesh_operator.loader import Loaded, load_paths
from mesh_operator.translate import MeshState
from meshctl.output import dump, err

#: How many field changes of one resource the text output shows (all of them are in ``-o json``).
MAX_FIELDS_SHOWN = 12


def add_parser(sub: Any) -> None:
    p = sub.add_parser("diff", help="per proxy, what applying the files would change (exit 0 none, 1 changes)")
    p.add_argument("-f", "--filename", dest="paths", action="append", required=True, help="file or directory")
    p.add_argument(
        "--against",
        default="cluster",
        metavar="DIR|cluster",
        help="the current mesh: a directory of mesh YAML (as local mode), or `cluster` (default): the one of "
        "--kubeconfig/--context",
    )
    p.add_argument("-o", "--output", choices=["text", "json", "yaml"], default="text")
    p.add_argument("--kubeconfig", help="with --against cluster (default: $KUBECONFIG)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("-n", "--namespace", help="namespace of policies that name none (default: the context's)")
    p.set_defaults(func=run)


def _identity(obj: Any) -> tuple[str, str, str]:
    meta = obj.metadata
    return (type(obj).__name__, getattr(meta, "namespace", None) or "default", meta.name)


def overlay(current: Loaded, change: Loaded) -> Loaded:
    """``current`` with every object of ``change`` put in place of the one with the same identity."""
    replaced = {_identity(obj) for _, obj in change.objects}
    out = Loaded()
    out.objects = [(label, obj) for label, obj in current.objects if _identity(obj) not in replaced]
    out.objects += change.objects
    out.invalid = {label for label in current.invalid if any(label == lb for lb, _ in out.objects)} | change.invalid
    out.problems = list(change.problems)
    out.refused = {**current.refused, **change.refused}
    return out


def states(paths: list[str], against: str) -> tuple[MeshState, MeshState, list[str]] | None:
    current = load_paths([against])
    change = load_paths(paths)
    fatal = [str(p) for p in current.errors] + [str(p) for p in change.errors]
    if fatal:
        for line in fatal:
            err(line)
        return None
    return current.state(), overlay(current, change).state(), [str(p) for p in change.warnings]


def cluster_states(args: argparse.Namespace) -> tuple[MeshState, MeshState, list[str]] | None:
    from meshctl import cluster
    from meshctl.cluster_state import overlay, read_state
    from meshctl.errors import AdminUnavailable

    change = load_paths(args.paths)
    if change.errors:
        for p in change.errors:
            err(str(p))
        return None
    try:
        before, _problems = read_state(args)
        namespace = cluster.namespace_of(args)
    except AdminUnavailable as e:
        err(str(e))
        return None
    after = overlay(before, [obj for _, obj in change.objects], namespace)
    return before, after, [str(p) for p in change.warnings]


def run(args: argparse.Namespace) -> int:
    loaded = cluster_states(args) if args.against == "cluster" else states(args.paths, args.against)
    if loaded is None:
        return 2
    before, after, warnings = loaded
    result = diff_states(before, after)
    for w in warnings:
        err(w)
    if args.output == "text":
        write_text(result)
    else:
        dump(to_data(result), args.output)
    return 1 if result.changed else 0


def to_data(d: MeshDiff) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        json.dumps(
            {
                "changed": d.changed,
                "summary": summary(d),
                "changed_inputs": list(d.changed_inputs),
                "problems": list(d.problems),
                "proxies": [asdict(p) for p in d.proxies],
            },
            default=str,
        )
    )
    return data


def summary(d: MeshDiff) -> dict[str, Any]:
    return {
        "proxies_changed": len(d.proxies),
        "proxies_total": d.total_proxies,
        "namespaces": list(d.namespaces),
        "services": list(d.services),
    }


def _short(value: Any, limit: int = 100) -> str:
    text = "(none)" if value is None else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write_text(d: MeshDiff, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    w = out.write
    if d.changed_inputs:
        w(f"inputs changed: {', '.join(d.changed_inputs)}\n")
    for problem in d.problems:
        w(f"problem: {problem}\n")
    for p in d.proxies:
        w(f"\n=== {p.node} ({p.change})\n")
        if p.failed:
            w(f"  ! {p.failed}\n")
        for r in p.resources:
            sign = {"added": "+", "removed": "-", "changed": "~"}[r.change]
            why = f"  <- {', '.join(r.culprits)}" if r.culprits else ""
            w(f"  {sign} {r.type[:-1]} {r.name}{why}\n")
            for f in r.fields[:MAX_FIELDS_SHOWN]:
                if f.before is None:
                    w(f"      + {f.path}: {_short(f.after)}\n")
                elif f.after is None:
                    w(f"      - {f.path}: {_short(f.before)}\n")
                else:
                    w(f"      ~ {f.path}: {_short(f.before)} -> {_short(f.after)}\n")
            if len(r.fields) > MAX_FIELDS_SHOWN:
                w(f"      … {len(r.fields) - MAX_FIELDS_SHOWN} more field(s) (-o json shows all)\n")
    s = summary(d)
    if not d.changed:
        w(f"no change: {s['proxies_total']} proxies, none affected\n")
        return
    services = ", ".join(s["services"]) or "none"
    w(
        f"\nblast radius: {s['proxies_changed']} of {s['proxies_total']} proxies in {len(s['namespaces'])} "
        f"namespace(s) ({', '.join(s['namespaces'])}); services: {services}\n"
    )
