"""The pre-flight check: real Envoy (``--mode validate``) judges new config before any proxy receives it.

Validation in Python catches what it knows; Envoy knows the rest (protoc-gen-validate rules, cross-field rules it
checks at load time). So before a changed snapshot is published, the static equivalent of the proxy's resources
(:func:`~xds_server.translate.render_bootstrap`: RDS inlined, EDS as static load assignments, SDS names as static
secrets) is validated by the Envoy binary the sidecars run.

Cost is bounded three ways:

* **only what changed**: a resource version (content hash of its bytes) that Envoy accepted once is never checked
  again; a proxy whose resources are all known-good is not checked at all;
* **batches**: up to ``batch_size`` proxies share one Envoy run. Their listener and cluster names are prefixed
  ``n<i>~`` (every string equal to such a name is renamed, so references follow) and their listeners get distinct
  ports: Envoy's validation depends on names only through uniqueness and references, and on ports only through
  uniqueness, so the merged bootstrap is valid exactly when every member is (``tests/envoy/test_preflight.py``
  checks this on every golden case and example). Envoy stops at the first error and names the resource; its
  prefix tells the proxy, which is taken out, and the rest is run again. An error naming no prefix splits the
  batch in halves;
* **workers**: batches run in parallel, ``workers`` at a time (the Envoy processes release the GIL);
* **parts** (off by default: ``split_min`` 0, see docs/notes/pf4.md): a proxy checked on its own with at least
  ``split_min`` new listeners and clusters, when there are fewer such proxies than workers and a core is idle
  (``idle``), is split into self-contained parts validated in parallel (one per idle worker): each part holds some
  of the new listeners with every cluster they refer to, and some of the new clusters; listeners sharing an address
  stay in one part. Envoy checks a static bootstrap's listeners against the clusters they refer to and its
  resources' names and addresses for uniqueness, so the union is valid exactly when every part is (the same argument
  that lets a check leave out the resources Envoy accepted before). The proxy is refused when any part is, with that
  part's error; ``tests/envoy/test_preflight_split.py`` pins it;
* **narrowing**: when Envoy refuses a binary bootstrap on a field rule, it dumps the whole bootstrap, which names
  every resource in it, so the error points at no policy (every policy in a burst would be blamed). Such a refused
  bootstrap is halved, the halves validated in parallel, until the resource refused is alone (a few more runs, on
  refusals only): its error then names the culprit's resources only.

A proxy validated on its own (a batch of one: the usual case once the mesh runs, where a change reaches few
proxies; ``len(proxies) <= workers`` gives every proxy its own run) is not rendered through proto-JSON at all: its
bootstrap is spliced from the snapshot's own bytes (:mod:`xds_server.preflight_wire`, Envoy reads ``.pb`` files as
a binary ``Bootstrap``), so Envoy validates exactly the bytes the proxy will receive, at a small fraction of the
cost of converting them to JSON. Merged batches keep the JSON path (renaming needs the document form).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xds_server import ir
from xds_server.ca import SpiffeId, TrustBundle, create_root
from xds_server.envoy_binary import envoy_path
from xds_server.preflight_parts import Part, divide
from xds_server.preflight_wire import route_names, static_bootstrap, strings
from xds_server.serialize import proto_dict
from xds_server.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, CachedResource, Snapshot
from xds_server.translate import EnvoyResources, render_bootstrap, translate_proxy

_PREFIX = re.compile(r"\bn(\d+)~")
#: in Envoy's error when a field rule fails on the bootstrap as a whole (it dumps the bootstrap)
_DUMPED_BOOTSTRAP = "\nstatic_resources {"
_FIRST_PORT = 10_000


@dataclass(frozen=True)
class Refusal:
    """Envoy refused a proxy's config: its message, and the resource it named (without the batch prefix)."""

    message: str
    resource: str | None = None


@dataclass
class PreflightStats:
    checks: int = 0
    envoy_runs: int = 0
    proxies_checked: int = 0
    refusals: int = 0
    #: Envoy runs on a binary bootstrap spliced from the proxy's bytes (the others: proto-JSON)
    binary_runs: int = 0
    seconds: float = 0.0
    last_seconds: float = 0.0
    #: of ``seconds``: waiting for Envoy processes (summed over parallel runs)
    envoy_seconds: float = 0.0
    #: proxies checked in several parts in parallel (each part one of the binary runs)
    split_checks: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


@dataclass
class Preflight:
    batch_size: int = 64
    workers: int = 2
    timeout: float = 60.0
    envoy: Path | None = None
    #: False: every check through proto-JSON documents (the path before binary bootstraps; for comparisons)
    binary: bool = True
    #: a proxy checked alone with at least this many new listeners and clusters is split across the idle workers
    #: (Envoy's ~0.25 s per run makes smaller checks cheaper in one run); 0: never split. Off by default: it did
    #: not shorten bench/apply.py's rounds, quiet or loaded (docs/notes/pf4.md); 64 is where it was measured
    split_min: int = 0
    #: whether a core is free for a second Envoy run: a split costs Envoy's start-up again, and on a busy machine
    #: the parallel run only competes with the rest (docs/notes/pf4.md); by default the 1-minute load average
    idle: Callable[[], bool] = field(default_factory=lambda: a_core_is_idle)
    stats: PreflightStats = field(default_factory=PreflightStats)

    def __post_init__(self) -> None:
        self._validated: set[str] = set()
        self._lock = threading.Lock()
        self._material: dict[str, tuple[str, str, str]] = {}
        self._binary = self.envoy or envoy_path()
        #: resource version -> the route configurations it takes over RDS / every string in it (content-keyed)
        self._routes_of: dict[str, frozenset[str]] = {}
        self._strings_of: dict[str, frozenset[bytes]] = {}

    # ------------------------------------------------------------------ public

    def needs_check(self, snapshot: Snapshot) -> bool:
        """Whether the snapshot holds a resource Envoy has not accepted before (secrets are never checked)."""
        with self._lock:
            return any(
                r.version not in self._validated
                for t, by_name in snapshot.resources.items()
                if t != SECRET
                for r in by_name.values()
            )

    def check(self, proxies: Mapping[str, tuple[ir.ProxyConfig, Snapshot]]) -> dict[str, Refusal]:
        """Validate what is new in the given proxies' configs; the refused proxies, with Envoy's reason.
        Blocking: run it off the event loop.

        Each proxy contributes only its resources Envoy has not accepted before, plus the clusters they refer to
        (and secrets): a one-route change checks one listener and a few clusters, not the whole proxy. A new
        resource shared by several proxies (same bytes) is checked once; if Envoy refuses it, every proxy that
        has it is refused."""
        if not proxies:
            return {}
        started = time.perf_counter()
        owner: dict[str, str] = {}  # resource version -> the proxy whose check covers it
        docs: dict[str, tuple[ir.ProxyConfig, Snapshot, set[str]]] = {}
        new_versions: dict[str, set[str]] = {}
        with self._lock:
            validated = set(self._validated)
        for node, (cfg, snap) in sorted(proxies.items()):
            fresh = {
                (t, name): r.version
                for t, by_name in snap.resources.items()
                if t != SECRET
                for name, r in by_name.items()
                if r.version not in validated
            }
            new_versions[node] = set(fresh.values())
            mine = {key for key, v in fresh.items() if v not in owner}
            for key in mine:
                owner.setdefault(fresh[key], node)
            if mine:
                docs[node] = (cfg, snap, {name for _, name in mine})
        nodes = list(docs)
        refused: dict[str, Refusal] = {}
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            if self._binary_for(len(nodes)):
                share = max(1, self.workers) // max(1, len(nodes)) if len(nodes) < self.workers and self.idle() else 1
                jobs = [(node, part) for node in nodes for part in self._parts(docs[node][1], docs[node][2], share)]
                with self._lock:
                    self.stats.split_checks += sum(n > 1 for n in Counter(node for node, _ in jobs).values())
                # (each bootstrap is spliced here, its Envoy run starting while the next one is spliced)
                runs = [pool.submit(self._run, self._wire(docs[node][0], docs[node][1], part)) for node, part in jobs]
                for (node, part), (ok, output) in zip(jobs, [r.result() for r in runs], strict=True):
                    if not ok and node not in refused:  # (the first refused part, in order)
                        message = envoy_error(self._narrow(docs[node][0], docs[node][1], part, output))
                        refused[node] = Refusal(_PREFIX.sub("", message), _resource_named(message))
            else:
                batches = [nodes[i : i + self.batch_size] for i in range(0, len(nodes), self.batch_size)]
                for result in pool.map(lambda b: self._check_batch(b, docs), batches):
                    refused.update(result)
        for node, versions in new_versions.items():
            if node not in refused:
                culprit = next((owner[v] for v in sorted(versions) if owner.get(v) in refused), None)
                if culprit is not None:
                    refused[node] = refused[culprit]
        with self._lock:
            for node, versions in new_versions.items():
                if node not in refused:
                    self._validated.update(versions)
            elapsed = time.perf_counter() - started
            self.stats.checks += 1
            self.stats.proxies_checked += len(docs)
            self.stats.refusals += len(refused)
            self.stats.seconds += elapsed
            self.stats.last_seconds = elapsed
        return refused

    # ------------------------------------------------------------------ batches

    def _binary_for(self, proxies: int) -> bool:
        """Whether ``proxies`` proxies to check each get their own Envoy run on a binary bootstrap."""
        return self.binary and proxies <= max(1, self.workers)

    def _check_batch(
        self, batch: list[str], docs: Mapping[str, tuple[ir.ProxyConfig, Snapshot, set[str]]]
    ) -> dict[str, Refusal]:
        refused: dict[str, Refusal] = {}
        pending = [batch]
        while pending:
            group = pending.pop()
            if len(group) == 1 and self.binary:
                cfg, snap, names = docs[group[0]]
                (whole,) = self._parts(snap, names, 1)
                ok, output = self._run(self._wire(cfg, snap, whole))
                output = output if ok else self._narrow(cfg, snap, whole, output)
            else:
                ok, output = self._run(merge_bootstraps([self._bootstrap(docs[n][0], docs[n][2]) for n in group]))
            if ok:
                continue
            message = envoy_error(output)
            m = _PREFIX.search(message)
            if len(group) == 1:
                refused[group[0]] = Refusal(_PREFIX.sub("", message), _resource_named(message))
            elif m is not None and int(m.group(1)) < len(group):
                culprit = group[int(m.group(1))]
                refused[culprit] = Refusal(_PREFIX.sub("", message), _resource_named(message))
                rest = [n for n in group if n != culprit]
                if rest:
                    pending.append(rest)
            else:
                half = len(group) // 2
                pending += [group[:half], group[half:]]
        return refused

    def _run(self, doc: dict[str, Any] | bytes) -> tuple[bool, str]:
        """One ``envoy --mode validate`` of a proto-JSON document or a binary ``Bootstrap`` (``.pb``)."""
        binary = isinstance(doc, bytes)
        with tempfile.NamedTemporaryFile("wb", suffix=".pb" if binary else ".json", prefix="meshwork-preflight-") as f:
            f.write(doc if isinstance(doc, bytes) else json.dumps(doc).encode())
            f.flush()
            argv = [str(self._binary), "--mode", "validate", "-c", f.name, "--disable-hot-restart", "-l", "critical"]
            started = time.perf_counter()
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, check=False)
            except subprocess.TimeoutExpired:
                return False, f"Envoy did not finish validating within {self.timeout:.0f}s"
            finally:
                with self._lock:
                    self.stats.envoy_seconds += time.perf_counter() - started
        with self._lock:
            self.stats.envoy_runs += 1
            self.stats.binary_runs += binary
        return proc.returncode == 0, (proc.stdout + proc.stderr).strip()

    def _parts(self, snap: Snapshot, names: set[str], parts: int) -> list[Part]:
        """What to validate of the snapshot's resources named in ``names``, in at most ``parts`` self-contained
        parts (one unless there are ``split_min`` listeners and clusters to check): those listeners and the
        listeners taking a named route configuration over RDS (every route configuration they take is inlined),
        those clusters, and with each listener every cluster it or its routes refer to (any string equal to a
        cluster's name counts as a reference). Divided by :func:`~xds_server.preflight_parts.divide`."""
        res = snap.resources
        listeners, routes, clusters = res.get(LISTENER, {}), res.get(ROUTE, {}), res.get(CLUSTER, {})
        named_routes = {n for n in names if n in routes}
        kept = [
            r
            for n, r in listeners.items()
            if n in names or (named_routes and self._routes(r.version, r.body) & named_routes)
        ]
        cluster_names = {n.encode(): n for n in clusters}
        needs = [self._needs(lis, routes, cluster_names) for lis in kept]
        loose = [n for n in clusters if n in names and not any(n in need for need in needs)]
        if parts <= 1 or self.split_min <= 0 or len(kept) + sum(n in clusters for n in names) < self.split_min:
            return [Part(tuple(kept), frozenset().union(*needs, loose))]
        return divide(kept, needs, loose, parts)

    def _needs(
        self, lis: CachedResource, routes: Mapping[str, CachedResource], cluster_names: Mapping[bytes, str]
    ) -> frozenset[str]:
        """The clusters a listener or the route configurations it takes over RDS refer to."""
        found = self._strings(lis.version, lis.body)
        for name in self._routes(lis.version, lis.body):
            route = routes.get(name)
            if route is not None:
                found = found | self._strings(route.version, route.body)
        return frozenset(cluster_names[s] for s in found if s in cluster_names)

    def _narrow(self, cfg: ir.ProxyConfig, snap: Snapshot, part: Part, output: str) -> str:
        """Envoy's error on the smallest refused piece of a refused part, when its error is a field rule checked
        on the whole bootstrap: Envoy then dumps the bootstrap, which names every resource of the part and so
        points at none. The part is halved (``divide``), both halves are validated in parallel, a refused
        half is halved again, until a single listener (with its clusters) or cluster is left, or no half is
        refused on its own (then the part's error stands)."""
        routes, clusters = snap.resources.get(ROUTE, {}), snap.resources.get(CLUSTER, {})
        cluster_names = {n.encode(): n for n in clusters}
        with ThreadPoolExecutor(max_workers=2) as pool:
            while _DUMPED_BOOTSTRAP in output:
                kept = list(part.listeners)
                needs = [self._needs(lis, routes, cluster_names) for lis in kept]
                loose = [n for n in clusters if n in part.clusters and not any(n in need for need in needs)]
                halves = divide(kept, needs, loose, 2)
                if len(halves) < 2:
                    break
                runs = [pool.submit(self._run, self._wire(cfg, snap, half)) for half in halves]
                refused = [
                    (half, out) for half, run in zip(halves, runs, strict=True) for ok, out in [run.result()] if not ok
                ]
                if not refused:
                    break
                part, output = refused[0]
        return output

    def _wire(self, cfg: ir.ProxyConfig, snap: Snapshot, part: Part) -> bytes:
        """The binary static bootstrap of one part of the snapshot (:meth:`_parts`)."""
        res = snap.resources
        return static_bootstrap(
            cfg,
            [r.body for r in part.listeners],
            [r.body for n, r in res.get(CLUSTER, {}).items() if n in part.clusters],
            {n: r.body for n, r in res.get(ROUTE, {}).items()},
            {n: r.body for n, r in res.get(ENDPOINT, {}).items()},
            self._throwaway_material(cfg.mesh.trust_domain),
        )

    def _routes(self, version: str, body: bytes) -> frozenset[str]:
        found = self._routes_of.get(version)
        if found is None:
            if len(self._routes_of) > 200_000:
                self._routes_of.clear()
            found = self._routes_of[version] = frozenset(route_names(body))
        return found

    def _strings(self, version: str, body: bytes) -> frozenset[bytes]:
        found = self._strings_of.get(version)
        if found is None:
            if len(self._strings_of) > 200_000:
                self._strings_of.clear()
            found = self._strings_of[version] = frozenset(strings(body))
        return found

    def _bootstrap(self, cfg: ir.ProxyConfig, names: set[str] | None = None) -> dict[str, Any]:
        """The static bootstrap of the proxy's resources named in ``names`` (all without), with every cluster
        they refer to."""
        chain, key, bundle = self._throwaway_material(cfg.mesh.trust_domain)
        res = subset(translate_proxy(cfg), names)
        return render_bootstrap(cfg, res, cert_chain_pem=chain, private_key_pem=key, trust_bundle_pem=bundle)

    def _throwaway_material(self, trust_domain: str) -> tuple[str, str, str]:
        """A certificate, key and bundle from a CA made for validation only (never used to serve)."""
        with self._lock:
            if trust_domain not in self._material:
                ca = create_root(trust_domain)
                leaf = ca.issue_keypair(SpiffeId.parse(f"spiffe://{trust_domain}/ns/preflight/sa/preflight"))
                self._material[trust_domain] = (
                    leaf.chain_pem.decode(),
                    leaf.private_key_pem.decode(),
                    TrustBundle.of(ca.root).to_pem().decode(),
                )
            return self._material[trust_domain]


def a_core_is_idle() -> bool:
    """Whether the machine's 1-minute load average leaves at least one core free."""
    return os.getloadavg()[0] <= (os.cpu_count() or 1) - 1


def subset(res: EnvoyResources, names: set[str] | None) -> EnvoyResources:
    """The listeners (with their route configurations) and clusters (with their endpoints) named, plus every
    cluster a kept listener or route refers to (any string equal to a cluster's name counts as a reference)."""
    if names is None:
        return res
    listeners = tuple(x for x in res.listeners if x.name in names)
    kept = {x.name for x in listeners} | {x.name for x in res.route_configs if x.name in names}
    listeners = tuple(x for x in res.listeners if x.name in kept)
    routes = tuple(x for x in res.route_configs if x.name in kept)
    cluster_names = {c.name for c in res.clusters}
    wanted = {n for n in names if n in cluster_names}
    for msg in (*listeners, *routes):
        wanted |= _strings(proto_dict(msg)) & cluster_names
    return EnvoyResources(
        listeners=listeners,
        route_configs=routes,
        clusters=tuple(c for c in res.clusters if c.name in wanted),
        cluster_load_assignments=tuple(a for a in res.cluster_load_assignments if a.cluster_name in wanted),
    )


def _strings(node: Any) -> set[str]:
    if isinstance(node, str):
        return {node}
    if isinstance(node, dict):
        return set().union(*(_strings(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_strings(v) for v in node)) if node else set()
    return set()


def merge_bootstraps(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """One bootstrap holding every member's listeners and clusters, renamed ``n<i>~<name>`` (with every reference),
    each listener on its own port. Secrets are shared (the members carry the same throwaway material)."""
    if len(docs) == 1:
        return docs[0]
    listeners: list[Any] = []
    clusters: list[Any] = []
    secrets: dict[str, Any] = {}
    port = _FIRST_PORT
    for i, doc in enumerate(docs):
        static = doc["static_resources"]
        names = {x["name"] for x in static["listeners"]} | {x["name"] for x in static["clusters"]}
        renamed = _rename(static, names, f"n{i}~")
        for lis in renamed["listeners"]:
            for addr in [lis.get("address"), *(a.get("address") for a in lis.get("additional_addresses", []))]:
                if addr and "socket_address" in addr:
                    addr["socket_address"]["port_value"] = port
                    port += 1
        listeners += renamed["listeners"]
        clusters += renamed["clusters"]
        for s in static.get("secrets", []):
            secrets.setdefault(s["name"], s)
    return {
        "node": docs[0]["node"],
        "admin": docs[0]["admin"],
        "static_resources": {"listeners": listeners, "clusters": clusters, "secrets": list(secrets.values())},
    }


def _rename(node: Any, names: set[str], prefix: str) -> Any:
    if isinstance(node, str):
        return prefix + node if node in names else node
    if isinstance(node, dict):
        return {k: _rename(v, names, prefix) for k, v in node.items()}
    if isinstance(node, list):
        return [_rename(v, names, prefix) for v in node]
    return node


def envoy_error(output: str) -> str:
    """The reason in Envoy's validation output: everything after ``error initializing configuration '...':``
    (proto dumps included: they often carry the provenance of the offending part)."""
    m = re.search(r"error initializing configuration '[^']*': (.*)", output, re.DOTALL)
    if m:
        return m.group(1).strip()
    lines = [ln for ln in output.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "Envoy refused the configuration (no message)"


def _resource_named(message: str) -> str | None:
    m = re.search(r"\bn\d+~([^\s':,]+)", message)
    return m.group(1) if m else None


def reason_line(error: str, limit: int = 300) -> str:
    """One readable line of an Envoy NACK or validation error. Envoy's texts may name the resource on their first
    line, follow it with a 70-100 line proto dump, and end with the problem as a chain of ``caused by`` clauses:
    the line keeps the resource and the innermost cause, cut to ``limit`` characters."""
    lines = [ln.strip() for ln in error.splitlines() if ln.strip() and not ln.strip().startswith("goo.gle/")]
    if not lines:
        return ""
    cause = lines[-1].rsplit("caused by", 1)[-1].strip().rstrip(")").lstrip(": ")
    head = lines[0]
    if head.startswith("Error adding/updating") and head != lines[-1]:
        text = f"{head.split(':', 1)[0]}: {cause}"
    elif head.startswith("Error adding/updating"):
        text = f"{head.split(':', 1)[0]}: {cause}" if "caused by" in head else head
    else:
        text = cause
    return text if len(text) <= limit else text[: limit - 1] + "…"
