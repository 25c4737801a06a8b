"""``meshctl apply -f PATH... [--wait] [--timeout 2m]``: put policies in force and, with ``--wait``, return only
once every policy is Accepted and every affected proxy has ACKed the config that carries it.

Two targets:

- **local mode** (``--local DIR``): the files are written (atomically, under their own names) into DIR, the
  directory a running ``meshctl local run`` watches; progress is read from its admin endpoint (``--admin``).
- **a cluster** (``--kubeconfig``/``--context``/``-n``): server-side apply with field manager ``meshctl``, then
  each policy's status as the operator writes it (``observedGeneration``, ``Accepted``, ``status.proxies``); see
  :mod:`meshctl.apply_cluster`.

Exit codes: 0 in force everywhere; 1 not accepted, rejected by a proxy (its name and Envoy's error are printed)
or timed out (the proxies still behind are listed); 2 bad input or the target unreachable.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesh_operator.loader import Loaded, expand, load_paths
from meshctl import cluster
from meshctl.admin_client import DEFAULT_ADMIN, AdminUnavailable, get
from meshctl.output import err
from xds_server.preflight import reason_line

POLL_SECONDS = 0.2


def add_parser(sub: Any) -> None:
    p = sub.add_parser("apply", help="apply policies; with --wait, until every affected proxy has them")
    p.add_argument("-f", "--filename", dest="paths", action="append", required=True, help="file or directory")
    p.add_argument("--local", metavar="DIR", help="local mode: the directory a running `meshctl local run` watches")
    p.add_argument("--admin", help=f"local mode: the control plane admin URL (default {DEFAULT_ADMIN})")
    p.add_argument("--wait", action="store_true", help="wait until accepted and ACKed by every affected proxy")
    p.add_argument("--timeout", default="2m", help="how long --wait waits (e.g. 90s, 2m; default 2m)")
    cluster_args(p)
    p.set_defaults(func=run)


def cluster_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", help="apply to this cluster (default: $KUBECONFIG)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("-n", "--namespace", help="namespace of objects that name none (default: the context's)")
    p.add_argument(
        "--admin-service",
        default=cluster.DEFAULT_ADMIN_SERVICE,
        help="on a cluster, where a timeout looks up which proxies are behind (the control plane's admin Service, "
        f"through the API server; default {cluster.DEFAULT_ADMIN_SERVICE}; --admin URL overrides)",
    )


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
    if not m:
        raise ValueError(f"--timeout must be a duration such as 90s or 2m, got {text!r}")
    return float(m[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m[2] or "s"]


@dataclass
class Progress:
    """One look at the control plane: done, failed (with the lines to print), or how far along."""

    done: bool = False
    failures: list[str] = field(default_factory=list)
    in_sync: int = 0
    total: int = 0
    behind: list[str] = field(default_factory=list)
    waiting_for: str = ""


def local_progress(policyz: dict[str, Any], sync: dict[str, Any], keys: list[str], generation: int) -> Progress:
    """Where a local apply stands: translated past ``generation``, each policy of ``keys`` accepted, no proxy
    rejecting, every proxy on its desired version."""
    p = Progress()
    desired: dict[str, str] = policyz.get("desired", {})
    p.total = len(desired)
    p.behind = proxies_behind(policyz, sync)
    p.in_sync = p.total - len(p.behind)
    for node in sorted(desired):
        for type_url, t in sorted((sync.get(node) or {}).get("types", {}).items()):
            if t.get("rejecting") and t.get("last_nack"):
                error = t["last_nack"]["error"]
                p.failures.append(f"{node} rejected {type_url.rsplit('.', 1)[-1]}: {reason_line(error)}")
    for node, why in sorted(policyz.get("failed", {}).items()):
        p.failures.append(f"{node}: the control plane cannot build its config: {why}")
    if policyz.get("generation", 0) <= generation:
        p.waiting_for = "the control plane to translate the change"
        return p
    policies = policyz.get("policies", {})
    for key in keys:
        receipt = policies.get(key)
        if receipt is None:
            p.waiting_for = f"{key} to appear"
            continue
        accepted = receipt["accepted"]
        if accepted.get("status") != "True":
            p.failures.append(f"{key} is not accepted: {accepted.get('reason')}: {accepted.get('message')}")
        for proxy, reason in sorted((receipt.get("rejected_reason") or receipt.get("rejected") or {}).items()):
            p.failures.append(f"{key} rejected by {proxy}: {reason}")
    p.done = not p.failures and not p.waiting_for and not p.behind
    return p


class Reporter:
    """A progress line rewritten in place on a terminal; a plain line per change otherwise."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last = ""

    def show(self, line: str) -> None:
        if line == self.last:
            return
        self.last = line
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()


def _file_of(label: str) -> str:
    """``dir/a.yaml#2 (Kind ns/name)`` -> ``dir/a.yaml``."""
    return label.split(" (", 1)[0].split("#", 1)[0]


def policy_keys(loaded: Loaded, default_namespace: str, files: set[str] | None = None) -> list[str]:
    """``Kind/ns/name`` of every policy in the files (their receipts are what --wait waits for)."""
    keys = []
    for label, obj in loaded.objects:
        kind = type(obj).__name__
        if kind in cluster.PLURALS and (files is None or _file_of(label) in files):
            keys.append(f"{kind}/{obj.metadata.namespace or default_namespace}/{obj.metadata.name}")
    return sorted(set(keys))


def run(args: argparse.Namespace) -> int:
    try:
        timeout = parse_duration(args.timeout)
    except ValueError as e:
        err(str(e))
        return 2
    loaded = check_files(args.paths, Path(args.local) if args.local else None)
    if loaded is None:
        return 2
    if args.local:
        return apply_local(args, loaded, timeout)
    from meshctl.apply_cluster import apply_cluster

    return apply_cluster(args, loaded, timeout)


def check_files(paths: list[str], directory: Path | None) -> Loaded | None:
    """Validate the files; in local mode together with the rest of the directory they will join (cross-object
    rules: an upstream names a service of another file). None, after printing why, when any of them has an error;
    errors of files already in the directory only warn (they are not this apply's to fix)."""
    files = expand(paths)
    if directory is None or not directory.is_dir():
        loaded = load_paths(files)
    else:
        names = {f.name for f in files}
        loaded = load_paths([*(f for f in expand([directory]) if f.name not in names), *files])
    mine = {str(f) for f in files}
    own = [p for p in loaded.problems if _file_of(p.source) in mine or not files]
    for problem in own:
        err(str(problem))
    errors = [p for p in own if p.violation.severity == "error"]
    if errors or not files:
        err(f"nothing applied: {len(errors) or 1} error(s)")
        return None
    return loaded


def apply_local(args: argparse.Namespace, loaded: Loaded, timeout: float) -> int:
    directory = Path(args.local)
    admin = args.admin or DEFAULT_ADMIN
    if not directory.is_dir():
        err(f"--local {directory} is not a directory")
        return 2
    try:
        generation = int(get(admin, "/debug/policyz").get("generation", 0))
    except AdminUnavailable as e:
        err(str(e))
        return 2
    changed = 0
    for source in expand(args.paths):
        target = directory / source.name
        text = source.read_text()
        if target.is_file() and target.read_text() == text:
            print(f"{target}: unchanged")
            continue
        tmp = target.with_name(f".{target.name}.meshctl.tmp")
        tmp.write_text(text)
        tmp.replace(target)
        changed += 1
        print(f"{target}: written")
    if not args.wait:
        return 0
    keys = policy_keys(loaded, "default", {str(f) for f in expand(args.paths)})
    # Nothing written: the control plane has nothing new to translate; wait on what is in force.
    since = generation if changed else -1
    return wait(
        lambda: local_progress(get(admin, "/debug/policyz"), get(admin, "/debug/syncz")["proxies"], keys, since),
        timeout,
    )


def proxies_behind(policyz: dict[str, Any], sync: dict[str, Any]) -> list[str]:
    """Every proxy not on the version the control plane wants for it, as ``node (acked X, wants Y)``."""
    out = []
    for node, wanted in sorted(policyz.get("desired", {}).items()):
        proxy = sync.get(node)
        if proxy is None:
            out.append(f"{node} (not connected)")
        elif proxy.get("acked_version") != wanted:
            out.append(f"{node} (acked {proxy.get('acked_version') or 'nothing'}, wants {wanted})")
    return out


def wait(look: Any, timeout: float, reporter: Reporter | None = None, on_timeout: Any = None) -> int:
    """Poll ``look()`` (a :class:`Progress`) until done (0), failed or timed out (1), or unreachable (2).
    ``on_timeout()``, if given, returns more lines for the timeout report (e.g. proxy names)."""
    reporter = reporter or Reporter()
    deadline = time.monotonic() + timeout
    last = Progress()
    while True:
        try:
            last = look()
        except AdminUnavailable as e:
            reporter.end()
            err(str(e))
            return 2
        if last.failures:
            reporter.end()
            for line in last.failures:
                err(line)
            return 1
        if last.done:
            reporter.show(f"applied: {last.in_sync}/{last.total} proxies in sync")
            reporter.end()
            print(f"in force: every affected proxy ({last.total}) has ACKed the change")
            return 0
        waiting = f"; waiting for {last.waiting_for}" if last.waiting_for else ""
        reporter.show(f"applied {last.in_sync}/{last.total} proxies{waiting}")
        if time.monotonic() >= deadline:
            reporter.end()
            err(f"timed out after {timeout:g}s" + (f" waiting for {last.waiting_for}" if last.waiting_for else ""))
            for line in last.behind + (on_timeout() if on_timeout else []):
                err(f"still behind: {line}")
            return 1
        time.sleep(POLL_SECONDS)
