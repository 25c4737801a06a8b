"""`make demo`: the local mesh, end to end, in under two minutes.

Starts `meshctl local run` on examples/mesh (control plane, one Envoy sidecar per workload, tiny Python services),
sends traffic through the sidecars, prints what the mesh did, shows `meshctl status`, and stops everything.
Tracing needs an OpenTelemetry Collector: the demo starts the one `make otelcol-binary` built (OTLP/gRPC on
127.0.0.1:4317, spans to a file) and otherwise says that step was skipped and why.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from mesh_operator.testing.otel import Collector, Span, cached_collector_binary

ROOT = Path(__file__).resolve().parents[1]
MESH = ROOT / "examples" / "mesh"
ADMIN = "http://127.0.0.1:15014"
LOADGEN_TO_FRONTEND = "http://127.0.0.1:16000"
#: where examples/mesh/mesh.yaml sends spans
OTLP_PORT = 4317
LOADGEN_TO_BACKEND = "http://127.0.0.1:16002"
INTRUDER_TO_BACKEND = "http://127.0.0.1:16003"
BIN = Path(sys.executable).parent
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
#: ES256, sub "ada", aud "backend", signed once for the demo by a key whose private half was thrown away; its
#: public key is in examples/mesh/backend-authn.yaml.
DEMO_TOKEN = (
    "eyJhbGciOiAiRVMyNTYiLCAidHlwIjogIkpXVCIsICJraWQiOiAia2V5LTEifQ.eyJpc3MiOiAiaHR0cHM6Ly9sb2dpbi5leGFtc"
    "GxlLm9yZyIsICJzdWIiOiAiYWRhIiwgImlhdCI6IDE3OTYxMTgxNjksICJleHAiOiAyMTExNDc4MTc0LCAiYXVkIjogImJhY2tlb"
    "mQifQ.9n7KdRaaR07K5VJoyBLQuppjN4OX8DH6hp_ZG8eR8zxIqldoWcpdl_YteSAVtsWk57njzt4us8HXuLvUh6i-ZA"
)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


NO_REDIRECT = urllib.request.build_opener(NoRedirect, urllib.request.ProxyHandler({}))


def get(url: str, headers: dict[str, str] | None = None, opener: urllib.request.OpenerDirector = OPENER):
    req = urllib.request.Request(url, headers=headers or {})
    start = time.monotonic()
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read(), time.monotonic() - start
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read(), time.monotonic() - start


def retries() -> int:
    """Retries loadgen's sidecar made toward backend v2 (Envoy admin stats)."""
    _, _, body, _ = get("http://127.0.0.1:15190/stats?filter=backend.shop.*v2.upstream_rq_retry$")
    return sum(int(line.rsplit(": ", 1)[1]) for line in body.decode().splitlines() if ": " in line)


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def row(what: str, expected: str, observed: str) -> None:
    print(f"  {what:<46} {expected:<26} {observed}", flush=True)


def wait_converged(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the control plane exited; see its log above")
        try:
            with OPENER.open(ADMIN + "/debug/policyz", timeout=2) as r:
                desired = json.load(r)["desired"]
            with OPENER.open(ADMIN + "/debug/syncz", timeout=2) as r:
                proxies = json.load(r)["proxies"]
            if desired and all(proxies.get(n, {}).get("in_sync") for n in desired):
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise SystemExit("the mesh did not converge in time")


def wait_apps(timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # A listener Envoy has ACKed may still be warming (waiting for its routes, endpoints or secrets): refused.
        with contextlib.suppress(OSError):
            if get(LOADGEN_TO_FRONTEND + "/call/api/ready")[0] == 200:
                return
        time.sleep(0.2)


def start_collector(stack: contextlib.ExitStack, directory: Path) -> tuple[Collector | None, str]:
    """The collector, or None and why not."""
    binary = cached_collector_binary()
    if binary is None:
        return None, "the OpenTelemetry Collector is not built: `make otelcol-binary` (needs Go, ~10 min once)"
    try:
        return stack.enter_context(Collector(directory, port=OTLP_PORT, binary=binary)), ""
    except (OSError, RuntimeError, TimeoutError) as e:
        return None, f"the collector did not start on 127.0.0.1:{OTLP_PORT}: {str(e).splitlines()[0][:120]}"


def trace_line(collector: Collector | None, why_not: str) -> None:
    step("10. Tracing: Mesh tracing (OpenTelemetry); loadgen -> frontend -> backend with a sampled traceparent")
    if collector is None:
        row("one trace across every hop", "4 spans, parent links", f"skipped: {why_not}")
        return
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    get(LOADGEN_TO_FRONTEND + "/call/traced", {"traceparent": f"00-{trace_id}-{parent}-01"})
    spans: list[Span] = []
    deadline = time.monotonic() + 20  # Envoy flushes spans every 5 s
    while time.monotonic() < deadline and len(spans) < 4:
        time.sleep(0.5)
        spans = [s for s in collector.spans() if s.trace_id == trace_id]
    by_parent = {s.parent_span_id: s for s in spans}
    chain = [by_parent[parent]] if parent in by_parent else []
    while chain and chain[-1].span_id in by_parent:
        chain.append(by_parent[chain[-1].span_id])
    hops = " -> ".join(s.service.split(".")[0] for s in chain) or "no spans"
    # Linked: every span's parent is the caller's traceparent or another span of the trace (a retried hop adds a
    # sibling span, so the trace may branch).
    ids = {s.span_id for s in spans}
    linked = "all linked" if spans and all(s.parent_span_id in ids | {parent} for s in spans) else "NOT linked"
    row("one trace across every hop", "4 spans, parent links", f"{len(spans)} spans, {linked}: {hops}")
    policies = sorted({str(s.attributes["meshwork.policies"]) for s in chain if "meshwork.policies" in s.attributes})
    row(
        "policies named on the spans (meshwork.policies)",
        "TrafficPolicy + RetryPolicy backend",
        ", ".join(policies) or "-",
    )


def tour() -> None:
    step("1. Traffic split: TrafficPolicy backend, rule 'split' (80 % v1, 20 % v2)")
    seen = Counter(get(LOADGEN_TO_BACKEND + f"/item/{i}")[1].get("x-served-by", "?") for i in range(200))
    v2 = seen["backend-v2"]
    v1 = seen["backend-v1-a"] + seen["backend-v1-b"]
    row("200 requests to backend", "~160 v1 / ~40 v2", f"{v1} v1 / {v2} v2 ({dict(sorted(seen.items()))})")

    step("2. Header match: x-canary: true goes to v2")
    canary = Counter(get(LOADGEN_TO_BACKEND + "/", {"x-canary": "true"})[1].get("x-served-by") for _ in range(20))
    row("20 requests with x-canary: true", "20 backend-v2", str(dict(canary)))

    step("3. Retries absorb a flaky backend (v2 fails every 3rd request; RetryPolicy retries 5xx)")
    before = retries()
    statuses = Counter(get(LOADGEN_TO_BACKEND + "/", {"x-canary": "true"})[0] for _ in range(30))
    row("30 requests to the flaky v2", "all 200", str(dict(statuses)))
    row("retries the caller's sidecar made", "~10", str(retries() - before))

    step("4. Fault injection: /flaky aborts 50 % with 503, /slow adds a 200 ms delay")
    flaky = Counter(get(LOADGEN_TO_BACKEND + "/flaky")[0] for _ in range(100))
    row("100 requests to /flaky", "~50 x 503", str(dict(flaky)))
    slow = sorted(get(LOADGEN_TO_BACKEND + "/slow")[3] for _ in range(5))
    row("5 requests to /slow (median latency)", "~200 ms", f"{slow[2] * 1000:.0f} ms")

    step("5. Local rate limit: /limited allows 5 requests per second per instance")
    limited = Counter(get(LOADGEN_TO_BACKEND + "/limited")[0] for _ in range(30))
    row("30 requests in a burst", "some 429", str(dict(limited)))

    step("6. Access control: AccessPolicy backend (deny /admin; allow frontend and loadgen)")
    row("loadgen -> backend /admin", "403", str(get(LOADGEN_TO_BACKEND + "/admin")[0]))
    row("loadgen -> backend /%61dmin (encoded)", "403", str(get(LOADGEN_TO_BACKEND + "/%61dmin")[0]))
    row("intruder -> backend /", "403", str(get(INTRUDER_TO_BACKEND + "/")[0]))
    row("loadgen -> backend /", "200", str(get(LOADGEN_TO_BACKEND + "/")[0]))

    step("7. Redirect and rewrite")
    status, headers, _, _ = get(LOADGEN_TO_BACKEND + "/v0/items", opener=NO_REDIRECT)
    row("/v0/items", "301 -> http://<host>/api/items", f"{status} -> {headers.get('location', '-')}")
    _, headers, body, _ = get(LOADGEN_TO_BACKEND + "/api/items", {"x-canary": "false"})
    row("/api/items reaches the app as", "/items", json.loads(body).get("path", "?"))

    step("8. mTLS and identity: loadgen -> frontend -> backend, each hop mutually authenticated")
    _, _, body, _ = get(LOADGEN_TO_FRONTEND + "/call/whoami")
    doc = json.loads(body)
    cert = doc.get("upstream", {}).get("client_cert", "")
    caller = next((p.split("=", 1)[1] for p in cert.split(";") if p.startswith("URI=")), "?")
    row("backend saw the caller's SPIFFE ID", "spiffe://example.org/ns/shop/sa/frontend", caller)

    step("9. End-user JWT: AuthenticationPolicy backend (issuer login.example.org; sub -> x-user)")
    status, _, body, _ = get(LOADGEN_TO_BACKEND + "/", {"authorization": f"Bearer {DEMO_TOKEN}"})
    user = json.loads(body).get("headers", {}).get("x-user", "-") if status == 200 else "-"
    forged = get(LOADGEN_TO_BACKEND + "/", {"authorization": f"Bearer {DEMO_TOKEN[:-4]}AAAA"})[0]
    row("valid token / bad signature", "200 as ada / 401", f"{status} as {user} / {forged}")


def main() -> int:
    subprocess.run([str(BIN / "meshctl"), "validate", "-f", str(MESH)], check=True)
    with tempfile.TemporaryDirectory(prefix="meshwork-demo-") as state, contextlib.ExitStack() as stack:
        collector, why_not = start_collector(stack, Path(state))
        log_path = Path(state) / "control-plane.log"
        step("Starting the local mesh: control plane + 6 Envoy sidecars + 4 services")
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [str(BIN / "meshctl"), "local", "run", "-f", str(MESH), "--state-dir", state + "/state"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        try:
            started = time.monotonic()
            wait_converged(proc)
            wait_apps()
            print(f"  every proxy ACKed its config after {time.monotonic() - started:.1f}s")
            tour()
            trace_line(collector, why_not)
            step("meshctl status")
            subprocess.run([str(BIN / "meshctl"), "status"], check=False)
        except BaseException:
            print(log_path.read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            step("Stopping: SIGTERM to meshctl local run stops every process it started")
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            leftovers = list(Path(state, "state", "proxies").glob("*/*.pid"))
            print(f"  stopped (exit {proc.returncode}); processes left behind: {len(leftovers)}")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    raise SystemExit(main())
