"""``meshctl explain`` predicts what real Envoy does: over requests generated from the routes of the example mesh
(examples/mesh) and of golden meshes (tests/golden/cases), the predicted route, status, backends, upstream path,
response headers and access decision (the deciding AccessPolicy rule, or default-deny) equal what the sidecars do.

Each mesh is run with the same policy files as the fixture (its inventory rebuilt with free local ports); the
prediction is computed from the very directory the control plane reads. The route Envoy chose shows through the
echo app (which instance answered, which path and headers it got); the deciding access rule through the per-rule
RBAC counters of the destination sidecars (``track_per_rule_stats``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from mesh_operator.analysis.explain import Request, explain
from mesh_operator.loader import load_paths
from mesh_operator.testing.localmesh import LocalMeshBuilder, RunningMesh, eventually
from mesh_operator.translate import translate_mesh
from xds_server import ir

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "golden" / "cases"


def _policies(path: Path) -> str:
    """The policy documents of a fixture file, without its Inventory and Mesh (rebuilt by the builder)."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") not in ("Inventory", "Mesh")]
    return yaml.safe_dump_all(docs, sort_keys=False)


def generated(routes: tuple[ir.Route, ...], extra_paths: tuple[str, ...] = ()) -> Iterator[Request]:
    """Requests derived from each route's match: one that meets it, and near misses (no headers, no query, other
    method), plus ``extra_paths`` (for regex routes, which cannot be inverted generally)."""
    for r in routes:
        m = r.match
        if m.path.kind == "regex":
            continue
        path = m.path.value if m.path.kind == "exact" else m.path.value.rstrip("/") + "/probe"
        headers = tuple(
            (h.name, h.value + ("x" if h.kind == "prefix" else "") if h.kind != "present" else "1")
            for h in m.headers
            if not (h.invert and h.kind == "present")
        )
        query = "&".join(f"{q.name}={q.value or '1'}" for q in m.query)
        full = path + (f"?{query}" if query else "")
        method = m.method or "GET"
        yield Request(full, method, headers)
        if headers:
            yield Request(full, method, ())
        if query:
            yield Request(path, method, headers)
        if m.method:
            yield Request(full, "PUT", headers)
    for p in extra_paths:
        yield Request(p)


def _allowed_by(m: RunningMesh, workload: str) -> dict[str, int]:
    """Per-rule ALLOW hits of one sidecar (``track_per_rule_stats``), by rule key."""
    prefix, suffix = "allow_.policy.", ".allowed"
    out = {}
    for name, value in m.stats(workload, "rbac").items():
        rule = name.split(".rbac.", 1)[-1]
        if rule.startswith(prefix) and rule.endswith(suffix):
            out[rule[len(prefix) : -len(suffix)]] = value
    return out


def _log_details(m: RunningMesh, instances: list[str], token: str) -> set[str]:
    """The ``details`` (``%RESPONSE_CODE_DETAILS%``) of the destination access-log lines of one request (found by
    the unique ``token`` in its query string); Envoy flushes the logs every 500 ms in local mode."""

    def lines() -> set[str]:
        found = set()
        for instance in instances:
            ns, name = instance.split("/", 1)
            log = m.builder.state_dir / "proxies" / f"{ns}_{name}" / "access.log"
            for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
                if token in line and " details=" in line:
                    found.add(line.split(" details=", 1)[1].split(" ", 1)[0])
        return found

    return eventually(lines, timeout=5)


def _with_token(req: Request, i: int) -> tuple[Request, str]:
    token = f"probe=p{i}x"
    sep = "&" if "?" in req.path else "?"
    return Request(req.path + sep + token, req.method, req.headers), token


def check_corpus(
    m: RunningMesh, builder: LocalMeshBuilder, callers: dict[str, str], requests: list[tuple[str, Request]]
) -> list[str]:
    """Send every request for real and compare with the prediction; returns the mismatches (empty: all equal).

    The deciding access rule is read where Envoy states it: a denial's access-log ``details`` name the matched
    DENY rule (``rbac_access_denied_matched_policy[KEY]``, ``[none]`` for default-deny); an allowed request must
    raise the per-rule counter of the predicted ALLOW rule (other callers' health checks may raise it too, so a
    counter is evidence only for an allow, never for a deny)."""
    state = load_paths([builder.mesh_dir]).state()
    mismatches: list[str] = []
    for i, (caller, plain) in enumerate(requests):
        req, token = _with_token(plain, i)
        ns = builder.workloads[caller].namespace
        service = callers[caller]
        e = explain(state, f"{ns}/{caller}", service, None, req)
        instances = sorted({i for b in e.backends if b.weight > 0 for i in b.instances})
        names = [i.split("/", 1)[1] for i in instances]
        before = {wl: _allowed_by(m, wl) for wl in names}
        resp = m.get(caller, service, req.path, method=req.method, headers=dict(req.headers))
        where = f"{caller} {req.method} {req.path} {dict(req.headers)} (predicted route {e.route})"
        if resp.status != e.status:
            mismatches.append(f"{where}: status {resp.status}, predicted {e.status} ({e.outcome})")
            continue
        if e.outcome == "redirect":
            assert e.redirect_location is not None
            predicted = e.redirect_location.replace("{host}", "127.0.0.1")
            location = resp.headers.get("location", "")
            if location.split("://", 1)[-1].split("/", 1)[-1] != predicted.split("://", 1)[-1].split("/", 1)[-1]:
                mismatches.append(f"{where}: location {location}, predicted {predicted}")
            if e.redirect_location.startswith("https://") and not location.startswith(predicted):
                mismatches.append(f"{where}: location {location}, predicted {predicted}")
        if e.outcome == "upstream":
            if resp.served_by not in names:
                mismatches.append(f"{where}: served by {resp.served_by}, predicted one of {names}")
            body: dict[str, Any] = resp.json()
            if "path" in body and body["path"] != e.upstream_path:
                mismatches.append(f"{where}: app got path {body['path']}, predicted {e.upstream_path}")
            got_headers = body.get("headers", {})
            for k, v in e.request_headers_set:
                if "headers" in body and v not in got_headers.get(k.lower(), ""):
                    mismatches.append(f"{where}: app got {k}={got_headers.get(k.lower())}, predicted {v}")
            if e.upstream_host and "headers" in body and got_headers.get("host") != e.upstream_host:
                mismatches.append(f"{where}: app got host {got_headers.get('host')}, predicted {e.upstream_host}")
        for k, v in e.response_headers:
            if v not in resp.headers.get(k.lower(), ""):
                mismatches.append(f"{where}: response header {k}={resp.headers.get(k.lower())}, predicted {v}")
        if e.outcome not in ("upstream", "rbac_denied") or not e.access:
            continue
        details = _log_details(m, instances, token)
        denied = {d for d in details if d.startswith("rbac_access_denied_matched_policy[")}
        predicted_denials = {
            f"rbac_access_denied_matched_policy[{a.rule or 'none'}]" for a in e.access if not a.allowed
        }
        if e.outcome == "rbac_denied" and denied != predicted_denials:
            mismatches.append(f"{where}: sidecars denied with {details}, predicted {predicted_denials}")
        if e.outcome == "upstream":
            if denied:
                mismatches.append(f"{where}: sidecars denied with {details}, predicted allowed")
            rules = {a.rule for a in e.access if a.allowed and a.reason == "allow-rule"}
            for rule in rules:
                if not any(_allowed_by(m, wl).get(rule, 0) > before[wl].get(rule, 0) for wl in names):
                    mismatches.append(f"{where}: no sidecar counted an allow by {rule}")
    return mismatches


def _wait_healthy(m: RunningMesh, caller: str, endpoints: int) -> None:
    """Active health checks mark new endpoints healthy after their first check: wait for every one (``endpoints``:
    the endpoints of every backend cluster, counted once per cluster)."""
    eventually(lambda: m.stat_sum(caller, r"^cluster\.backend.*\.membership_healthy$") == endpoints, timeout=30)


def _outbound_routes(builder: LocalMeshBuilder, node: str, service_host: str) -> tuple[ir.Route, ...]:
    state = load_paths([builder.mesh_dir]).state()
    cfg = translate_mesh(state, only={node}).proxies[node]
    return next(o.routes for o in cfg.outbound if o.service == service_host)


def _deterministic(builder: LocalMeshBuilder, callers: dict[str, str], reqs: list[tuple[str, Request]]) -> list:
    """Drop requests whose outcome is a probability (partial faults): explain says so, Envoy rolls the dice."""
    state = load_paths([builder.mesh_dir]).state()
    out = []
    for caller, req in reqs:
        e = explain(state, f"{builder.workloads[caller].namespace}/{caller}", callers[caller], None, req)
        if not any("(fault)" in n for n in e.notes):
            out.append((caller, req))
    return out


def test_explain_predicts_envoy_on_the_example_mesh(tmp_path: Path) -> None:
    mesh = LocalMeshBuilder(tmp_path, namespace="shop")
    v1, v2 = {"app": "backend", "version": "v1"}, {"app": "backend", "version": "v2"}
    mesh.service(
        "backend",
        instances=[
            {"name": "backend-v1-a", "serviceAccount": "backend", "labels": v1},
            {"name": "backend-v1-b", "serviceAccount": "backend", "labels": v1},
            {"name": "backend-v2", "serviceAccount": "backend", "labels": v2},
        ],
    )
    callers = {"frontend": "backend", "loadgen": "backend", "intruder": "backend"}
    for c in callers:
        mesh.client(c, upstreams=["backend"])
    for f in ("backend-traffic.yaml", "backend-retry.yaml", "backend-access.yaml", "backend-authn.yaml"):
        mesh.policy((ROOT / "examples" / "mesh" / f).read_text(), file=f)
    mesh.write()
    routes = _outbound_routes(mesh, "shop/frontend", "backend.shop")
    base = list(generated(routes, ("/", "/admin/users", "/a/../admin/x", "//api//items", "/api/x?q=1")))
    reqs = [(c, r) for c in callers for r in base]
    reqs = _deterministic(mesh, callers, reqs)
    assert len(reqs) >= 25
    with mesh.run() as m:
        # intruder's health checks are refused by the AccessPolicy like its requests (so it sees none healthy and
        # Envoy's panic mode spreads its requests over every endpoint: they still reach the RBAC filter).
        for c in ("frontend", "loadgen"):
            _wait_healthy(m, c, 6)  # backend: 3, v1: 2, v2: 1
        assert check_corpus(m, mesh, callers, reqs) == []


def test_explain_predicts_envoy_on_the_traffic_management_golden_mesh(tmp_path: Path) -> None:
    mesh = LocalMeshBuilder(tmp_path, namespace="books")
    mesh.service(
        "reviews",
        instances=[
            {"name": "reviews-v1", "serviceAccount": "reviews", "labels": {"version": "v1"}},
            {"name": "reviews-v2", "serviceAccount": "reviews", "labels": {"version": "v2"}},
            {"name": "reviews-v3", "serviceAccount": "reviews-v3", "labels": {"version": "v3"}},
        ],
    )
    callers = {"productpage": "reviews"}
    mesh.client("productpage", upstreams=["reviews"])
    mesh.policy(_policies(GOLDEN / "traffic-management" / "input.yaml"))
    mesh.write()
    routes = _outbound_routes(mesh, "books/productpage", "reviews.books")
    extra = ("/reviews/12", "/reviews/12x", "/reviews", "/old/a/b?x=1", "/chaos/x", "/./old/y")
    reqs = [("productpage", r) for r in generated(routes, extra)]
    reqs += [("productpage", Request("/reviews/7", "GET", (("x-beta", "1"),)))]
    reqs += [("productpage", Request("/chaos/1", "GET", (("x-no-chaos", "1"),)))]
    reqs = _deterministic(mesh, callers, reqs)
    assert len(reqs) >= 15
    with mesh.run() as m:
        assert check_corpus(m, mesh, callers, reqs) == []


def test_explain_predicts_envoy_on_the_access_golden_mesh(tmp_path: Path) -> None:
    mesh = LocalMeshBuilder(tmp_path, namespace="bank")
    mesh.mesh(trustDomain="bank.example")
    mesh.service("ledger", instances=[{"name": "ledger-1", "serviceAccount": "ledger"}])
    mesh.client("teller", upstreams=["ledger"])
    mesh.client("clerk", upstreams=["ledger"])
    mesh.namespace = "batch"
    mesh.client("nightly", upstreams=["ledger.bank"])
    mesh.namespace = "audit"
    mesh.client("auditor", upstreams=["ledger.bank"])
    callers = {"teller": "ledger", "clerk": "ledger", "nightly": "ledger.bank", "auditor": "ledger.bank"}
    mesh.policy(_policies(GOLDEN / "access" / "input.yaml"))
    paths = ("/accounts/1", "/balance", "/balance/x", "/admin", "/ADMIN/users", "/x/../admin", "/other")
    reqs: list[tuple[str, Request]] = []
    for caller in callers:
        for i, p in enumerate(paths):
            method = ("GET", "POST", "DELETE")[i % 3]
            headers = (("x-audit-ticket", "T-1"),) if caller == "auditor" and i % 2 == 0 else ()
            reqs.append((caller, Request(p, method, headers)))
    with mesh.run() as m:
        assert check_corpus(m, mesh, callers, reqs) == []
    assert len(reqs) >= 25
