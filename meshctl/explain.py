"""``meshctl explain``: which rule of which policy one request meets, and whether it is let in."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, TextIO

from mesh_operator.analysis.explain import Explanation, Request, explain
from mesh_operator.errors import RenderError
from mesh_operator.loader import load_paths
from meshctl.output import dump, err


def add_parser(sub: Any) -> None:
    p = sub.add_parser("explain", help="which route, backends and access rule a request meets (offline)")
    p.add_argument("-f", "--filename", dest="paths", action="append", required=True, help="file or directory")
    p.add_argument("--from", dest="source", required=True, metavar="NS/WORKLOAD", help="the calling workload")
    p.add_argument("--to", dest="target", required=True, metavar="SERVICE[:PORT]", help="name, name.ns or ns/name")
    p.add_argument("--path", default="/", help="request path, with query string (default /)")
    p.add_argument("--method", default="GET")
    p.add_argument("-H", "--header", dest="headers", action="append", default=[], metavar="NAME:VALUE")
    p.add_argument("-o", "--output", choices=["text", "json", "yaml"], default="text")
    p.set_defaults(func=run)


def parse_target(target: str) -> tuple[str, int | None]:
    name, sep, port = target.rpartition(":")
    if not sep:
        return target, None
    if not port.isdigit() or not name:
        raise ValueError(f"--to must be SERVICE[:PORT], got {target!r}")
    return name, int(port)


def parse_headers(values: list[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for v in values:
        name, sep, value = v.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"-H must be NAME:VALUE, got {v!r}")
        out.append((name.strip(), value.strip()))
    return tuple(out)


def fatal(message: str) -> bool:
    """Problems that leave nothing to explain from (invalid policies are not: they are data, marked not accepted)."""
    return message.startswith(("cannot read", "invalid YAML", "no YAML files", "file is "))


def run(args: argparse.Namespace) -> int:
    try:
        service, port = parse_target(args.target)
        headers = parse_headers(args.headers)
    except ValueError as e:
        err(str(e))
        return 2
    if not args.path.startswith("/"):
        err(f"--path must start with /, got {args.path!r}")
        return 2
    loaded = load_paths(args.paths)
    for problem in loaded.errors:
        err(str(problem))
    if any(fatal(p.violation.message) for p in loaded.errors):
        return 2
    request = Request(path=args.path, method=args.method.upper(), headers=headers)
    try:
        result = explain(loaded.state(), args.source, service, port, request)
    except RenderError as e:
        err(str(e))
        return 2
    if args.output == "text":
        write_text(result)
    else:
        dump(to_data(result), args.output)
    return 0


def to_data(e: Explanation) -> dict[str, Any]:
    data = dataclasses.asdict(e)
    data["request"]["headers"] = [list(h) for h in e.request.headers]
    data["allowed"] = e.allowed_everywhere
    plain: dict[str, Any] = _plain(data)
    return plain


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _ms(value: int | None) -> str:
    return "none" if value is None else f"{value} ms"


def write_text(e: Explanation, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    w = out.write
    r = e.request
    w(f"request   {r.method} {r.path}  from {e.source} ({e.source_identity})  to {e.service}:{e.port}\n")
    if e.normalized_path != r.path.partition("?")[0]:
        w(f"          path as routed: {e.normalized_path}\n")
    if e.route is None:
        w("route     none matches: 404 (route_not_found)\n")
        return
    w(f"route     {e.route}  ({e.policy or 'default route, no TrafficPolicy'})\n")
    if e.redirect_location:
        w(f"redirect  {e.status} to {e.redirect_location}\n")
    for b in e.backends:
        names = ", ".join(i.split("/", 1)[1] for i in b.instances) or "NO ENDPOINTS"
        w(f"backend   {b.cluster}  {b.percent:g}%  ({names})\n")
    if e.upstream_path is not None and e.upstream_path != r.path:
        w(f"rewrite   path {r.path} -> {e.upstream_path}\n")
    if e.upstream_host:
        w(f"rewrite   host -> {e.upstream_host}\n")
    for k, v in e.request_headers_set:
        w(f"req hdr   {k}: {v}\n")
    for k in e.request_headers_removed:
        w(f"req hdr   -{k}\n")
    for m in e.mirrors:
        w(f"mirror    {m.cluster}  {m.percent:g}%\n")
    if e.outcome not in ("redirect", "route_not_found"):
        w(f"timeouts  request {_ms(e.timeout_ms)}, idle {_ms(e.idle_timeout_ms)}\n")
    if e.retry is not None:
        rt = e.retry
        budget = (
            f", budget {e.retry_budget.percent:g}% (min {e.retry_budget.min_retry_concurrency})"
            if e.retry_budget
            else ""
        )
        w(
            f"retries   {rt.attempts} on {','.join(rt.retry_on)}, per try {_ms(rt.per_try_timeout_ms)}{budget}"
            f"  ({rt.provenance.ref if rt.provenance else 'mesh default'})\n"
        )
    if e.fault is not None:
        f = e.fault
        parts = []
        if f.delay_ms:
            parts.append(f"delay {f.delay_ms} ms on {f.delay_percent:g}%")
        if f.abort_status:
            parts.append(f"abort {f.abort_status} on {f.abort_percent:g}%")
        w(f"fault     {', '.join(parts)}\n")
    for a in e.access:
        verdict = "ALLOW" if a.allowed else "DENY "
        why = a.rule or {"default-deny": "default-deny (no ALLOW rule matches)", "no-policy": "no AccessPolicy"}.get(
            a.reason, "no ALLOW policy; no DENY rule matches"
        )
        w(f"access    {verdict} on {a.instance}: {why}\n")
        for s in a.shadow_denied_by:
            w(f"          shadow policy would deny: {s}\n")
    for k, v in e.response_headers:
        w(f"resp hdr  {k}: {v}\n")
    for n in e.notes:
        w(f"note      {n}\n")
    w(f"status    {e.status} ({e.outcome})\n")
