"""``meshctl certs status`` and ``meshctl certs rotate``: talk to the control plane's admin server."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from meshctl.output import dump, err, table


def _call(admin: str, path: str, *, post: bool = False) -> tuple[int, Any]:
    req = urllib.request.Request(admin.rstrip("/") + path, method="POST" if post else "GET", data=b"" if post else None)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _certz(admin: str) -> dict[str, Any]:
    code, body = _call(admin, "/debug/certz")
    if code != 200:
        raise RuntimeError(f"GET /debug/certz: HTTP {code}")
    result: dict[str, Any] = body
    return result


def status(args: argparse.Namespace) -> int:
    try:
        data = _certz(args.admin)
    except (OSError, RuntimeError) as e:
        err(f"cannot reach the control plane at {args.admin}: {e}")
        return 2
    if args.output != "table":
        dump(data, args.output)
        return 0
    rows = [
        ("identity", ident, c["serial"], c["issuer"], c["not_after"], c["time_left"])
        for ident, c in data["identities"].items()
    ]
    rows.append(("issuer", data["issuer"]["subject"], *_cols(data["issuer"])))
    rows += [("root", r["subject"], *_cols(r)) for r in data["roots"]]
    table(["KIND", "NAME", "SERIAL", "ISSUER", "NOT AFTER", "TIME LEFT"], rows)
    rotation = data["rotation"]
    if rotation.get("phase"):
        print(f"root rotation: phase {rotation['phase']}, next step {rotation['next_step'] or '-'}")
    for warning in data["warnings"]:
        print(f"WARNING: {warning}", file=sys.stderr)
    return 0


def _cols(c: dict[str, Any]) -> tuple[str, str, str, str]:
    return c["serial"], c["issuer"], c["not_after"], c["time_left"]


def rotate(args: argparse.Namespace) -> int:
    try:
        return _rotate_root(args) if args.root else _rotate_identity(args)
    except (OSError, RuntimeError) as e:
        err(f"cannot reach the control plane at {args.admin}: {e}")
        return 2
    except TimeoutError as e:
        err(str(e))
        return 1


def _rotate_identity(args: argparse.Namespace) -> int:
    ns, _, sa = args.identity.partition("/")
    if not ns or not sa:
        err("--identity takes NAMESPACE/SERVICE_ACCOUNT")
        return 2
    trust_domain = _certz(args.admin)["trust_domain"]
    identity = f"spiffe://{trust_domain}/ns/{ns}/sa/{sa}"
    code, body = _call(
        args.admin, "/debug/rotate-identity?" + urllib.parse.urlencode({"identity": identity}), post=True
    )
    if code != 200:
        err(body.get("error", f"HTTP {code}"))
        return 1
    print(f"{identity}: new certificate serial {body['serial']}", flush=True)
    _wait_proxies(args, set(body["proxies"]))
    print(f"{identity}: every proxy ({len(body['proxies'])}) has the new certificate")
    return 0


def _rotate_root(args: argparse.Namespace) -> int:
    """Every step of a staged root rotation, each once every proxy has the previous step's material."""
    refused = 0
    steps_done = 0
    while steps_done < 4:
        _wait_proxies(args, None)
        rotation = _certz(args.admin)["rotation"]
        # A finished rotation (or none) starts a new one; one in progress goes on from where it is.
        step = rotation["next_step"] if rotation["phase"] not in (None, "complete") else "add-new-root"
        code, body = _call(args.admin, "/debug/rotate-root?step=next", post=True)
        if code == 409 and refused < 10:  # a proxy fell behind between our check and the step: wait again
            refused += 1
            print(f"step {step}: refused, retrying ({body.get('error', '')})", flush=True)
            continue
        if code != 200:
            err(body.get("error", f"HTTP {code}"))
            return 1
        steps_done += 1
        print(f"step {step}: done (phase {body['phase']})", flush=True)
        if body["phase"] == "complete":
            break
    _wait_proxies(args, None)
    print("root rotation complete: every proxy has a leaf of the new root and trusts only the new root")
    return 0


def _wait_proxies(args: argparse.Namespace, nodes: set[str] | None) -> None:
    """Until every proxy (or those in ``nodes``) has ACKed the current material; a progress line on change."""
    deadline = time.monotonic() + args.timeout
    last = ""
    while True:
        data = _certz(args.admin)
        proxies = {n: p for n, p in data["proxies"].items() if nodes is None or n in nodes}
        waiting = sorted({n for n, p in proxies.items() if not p["in_sync"]} | set(data["rotation"]["pending"]))
        if nodes is not None:
            waiting = [n for n in waiting if n in nodes]
        if not waiting:
            return
        line = f"  waiting for {len(waiting)}/{len(proxies)} proxies: {', '.join(waiting[:5])}"
        if line != last:
            print(line, flush=True)
            last = line
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(waiting)} proxies did not pick up the new material in {args.timeout:.0f}s")
        time.sleep(0.5)
