"""Apply benchmark: N TrafficPolicies created on a real kube-apiserver -> time until every one is Accepted=True and
Programmed=True for its generation; status writes per second; operator RSS.

Setup (not timed): etcd + kube-apiserver (``TestControlPlane``), the CRDs, one namespace with ``--policies``
Services and one client Pod whose sidecar calls all of them (so every policy lands in one proxy's config and can be
Programmed), and the operator as its own process (``python -m mesh_operator``, leader election on, one replica). No
Envoy is connected: Programmed means "in the snapshot of N proxies"; receipts stay 0/1. The operator has finished
its initial LIST and first translation before the clock starts.

Timed: from the first create request to the moment the bench sees every TrafficPolicy of the namespace with
``observedGeneration == generation`` and ``Accepted=True``, ``Programmed=True``: by default on a watch of the
policies started before the creates (then confirmed by one LIST), with ``--observe list`` by a LIST every 0.2 s (the
method of the first results; LISTing 1,000 objects back to back loads the apiserver and the bench's own process in
the very tail being measured, and the figure is up to 0.2 s late). It includes the creates themselves (``--workers``
client threads; their share is reported separately), kopf's watch delivery, the store, debounced translation of the
whole mesh, and the status writes (each a PATCH of the status subresource). Status writes/s = the operator's
successful writes / the timed span. RSS = the operator's peak resident set, sampled every 0.2 s (psutil), and at the
end. ``after_last_create_s``: the same clock from the last create's answer; ``progress_done``: how many were done
when, after the creates; ``operator_cpu_s``: the operator process's user+system CPU during the creates and in all (2
cores, shared). ``states_applied``: MeshStates the operator handed to the control plane; ``translations_published``:
translations it published.

    .venv/bin/python bench/apply.py                # 1,000 policies
    .venv/bin/python bench/apply.py --policies 200
    .venv/bin/python bench/apply.py --max-debounce 3   # the operator translates at most every 3 s under a burst
    .venv/bin/python bench/apply.py --baseline main    # before/after in one run: main's operator first
    .venv/bin/python bench/apply.py --creates-alone --baseline main   # + the creates with no operator, first

``--creates-alone`` first times the same creates on a fresh apiserver with no operator at all (the floor of the
figure on this machine: the client, the apiserver and etcd; ``figures.creates_alone_s``).

``--baseline REF`` measures the operator of that git ref first (``git archive`` into a temporary directory, put
first on the operator's ``PYTHONPATH``; its own fresh apiserver), then this tree's; both land in one result file
(``figures.baseline``). ``preflight``: the pre-flight check's share (per published round from the operator's log,
and its counters from ``/debug/policyz``; ``envoy_seconds``: time waiting for Envoy, not recorded before it existed).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import yaml
from kubernetes import client, watch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import _results as bench_results  # noqa: E402

from mesh_operator.testing import TestControlPlane  # noqa: E402
from mesh_operator.testing.kubemesh import OperatorProcess  # noqa: E402

GROUP, VERSION = "meshwork.io", "v1alpha1"


def install_crds(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    for path in sorted((REPO / "crds").glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        ext.create_custom_resource_definition(body)
    deadline = time.monotonic() + 30
    for path in sorted((REPO / "crds").glob("*.yaml")):
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        while time.monotonic() < deadline:
            conds = {c.type: c.status for c in (ext.read_custom_resource_definition(name).status.conditions or [])}
            if conds.get("Established") == "True":
                break
            time.sleep(0.1)


def done(item: dict[str, Any]) -> bool:
    status = item.get("status") or {}
    conds = {c["type"]: c["status"] for c in status.get("conditions") or []}
    return (
        status.get("observedGeneration") == item["metadata"]["generation"]
        and conds.get("Accepted") == "True"
        and conds.get("Programmed") == "True"
    )


def run_once(args: argparse.Namespace, code: Path | None, *, operator: bool = True) -> dict[str, Any]:
    """One measurement on a fresh apiserver; the operator runs from ``code`` (a checkout) if given, else from this
    tree; with ``operator=False`` none runs and only the creates are timed (the floor: client + apiserver + etcd)."""
    n = args.policies
    with tempfile.TemporaryDirectory(prefix="meshwork-bench-apply-") as tmp, TestControlPlane() as plane:
        work = Path(tmp)
        api = plane.api_client()
        core: Any = client.CoreV1Api(api)
        custom: Any = client.CustomObjectsApi(api)
        install_crds(api)
        ns = f"bench-{uuid.uuid4().hex[:6]}"
        for name in (ns, "meshwork-system"):
            core.create_namespace({"metadata": {"name": name}})
        for i in range(n):
            # Headless: the test apiserver's service CIDR has room for 254 ClusterIPs only.
            body = {"metadata": {"name": f"svc-{i}"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}
            core.create_namespaced_service(ns, body)
        upstreams = ",".join(f"svc-{i}:{20000 + i}" for i in range(n))
        core.create_namespaced_pod(
            ns,
            {
                "metadata": {
                    "name": "client",
                    "annotations": {"meshwork.io/proxy": "injected", "meshwork.io/upstreams": upstreams},
                },
                "spec": {"containers": [{"name": "app", "image": "x"}]},
            },
        )
        core.patch_namespaced_pod_status("client", ns, {"status": {"podIP": "127.0.0.1"}})
        if not operator:
            return {"creates_s": round(_creates_alone(custom, ns, n, args.workers), 2)}
        op = OperatorProcess(
            plane.kubeconfig_path, work / "ca", work / "operator.log", trust_domain="cluster.local",
            extra_args=["--max-debounce", str(args.max_debounce)],
        )  # fmt: skip
        saved, cwd = os.environ.get("PYTHONPATH"), os.getcwd()
        if code is not None:  # the child imports the checkout's packages first (``-m`` puts its cwd first)
            os.environ["PYTHONPATH"] = os.pathsep.join([str(code / "operator"), str(code)])
            os.chdir(code)
        try:
            op.start(timeout=args.start_timeout)
        except BaseException:
            op.stop()  # not left running when it did not get ready in time
            raise
        finally:
            os.chdir(cwd)
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved
        proc = psutil.Process(op.proc.pid if op.proc else 0)
        rss_peak = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal rss_peak
            while not stop.is_set():
                rss_peak = max(rss_peak, proc.memory_info().rss)
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        writes_before = op.admin("/debug/kubez")["status_writes"]
        preflight_before = op.admin("/debug/policyz").get("preflight") or {}
        rss_before = proc.memory_info().rss
        cpu_before = sum(proc.cpu_times()[:2])
        log_offset = (work / "operator.log").stat().st_size

        def create(i: int) -> None:
            _create(custom, ns, i)

        seen: dict[str, bool] = {}
        all_done = threading.Event()
        watched_at: list[float] = []
        if args.observe == "watch":
            rv = custom.list_namespaced_custom_object(GROUP, VERSION, ns, "trafficpolicies")["metadata"]
            thread = threading.Thread(
                target=_watch, args=(custom, ns, n, rv["resourceVersion"], seen, all_done, watched_at), daemon=True
            )
            thread.start()
        started = time.monotonic()
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(create, range(n)))
        created = time.monotonic() - started
        cpu_at_creates = sum(proc.cpu_times()[:2]) - cpu_before
        finished = None
        count = 0
        progress: list[tuple[float, int]] = []
        if args.observe == "watch":
            while not all_done.wait(1.0) and thread.is_alive() and time.monotonic() - started < args.timeout:
                progress.append((round(time.monotonic() - started, 1), sum(seen.values())))
        while time.monotonic() - started < args.timeout:
            items = custom.list_namespaced_custom_object(GROUP, VERSION, ns, "trafficpolicies")["items"]
            count = sum(1 for item in items if done(item))
            progress.append((round(time.monotonic() - started, 1), count))
            if count == n:
                # watch: when the last one was seen done (the LIST confirms it); list: this LIST
                finished = (watched_at[0] if watched_at else time.monotonic()) - started
                break
            time.sleep(0.2)
        stop.set()
        sampler.join()
        kubez = op.admin("/debug/kubez")
        cpu = sum(proc.cpu_times()[:2]) - cpu_before
        preflight = op.admin("/debug/policyz").get("preflight") or {}
        writes = kubez["status_writes"] - writes_before
        rss_end = proc.memory_info().rss
        op.stop()
        log_text = (work / "operator.log").read_bytes()
        if args.log is not None:
            suffix = "" if code is None else ".baseline"
            args.log.with_name(args.log.name + suffix).write_bytes(log_text)
        rounds = [int(m) for m in re.findall(rb"pre-flight (\d+) ms\)", log_text[log_offset:])]
        return {
            "policies": n,
            "observed_by": args.observe,
            "all_accepted_and_programmed_s": round(finished, 2) if finished else None,
            "done": count,
            "creates_s": round(created, 2),
            "after_last_create_s": round(finished - created, 2) if finished else None,
            "progress_done": _thin(progress),
            "operator_cpu_s": {"during_creates": round(cpu_at_creates, 1), "total": round(cpu, 1)},
            "status_writes": writes,
            "status_writes_per_s": round(writes / finished, 1) if finished else None,
            "states_applied": kubez["translations"],
            "translations_published": kubez["plane_generation"],
            "preflight": {
                "rounds_ms": rounds,
                "seconds": round(preflight.get("seconds", 0) - preflight_before.get("seconds", 0), 2),
                "envoy_runs": preflight.get("envoy_runs", 0) - preflight_before.get("envoy_runs", 0),
                "binary_runs": preflight.get("binary_runs", 0) - preflight_before.get("binary_runs", 0),
                "envoy_seconds": round(preflight.get("envoy_seconds", 0) - preflight_before.get("envoy_seconds", 0), 2)
                if "envoy_seconds" in preflight
                else None,
                "split_checks": preflight.get("split_checks", 0) - preflight_before.get("split_checks", 0)
                if "split_checks" in preflight
                else None,
            },
            "operator_rss_mib": {
                "before": round(rss_before / 2**20, 1),
                "peak": round(rss_peak / 2**20, 1),
                "end": round(rss_end / 2**20, 1),
            },
        }


def _create(custom: Any, ns: str, i: int) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrafficPolicy",
        "metadata": {"name": f"tp-{i}", "namespace": ns},
        "spec": {"targetRef": {"name": f"svc-{i}"}, "timeouts": {"request": f"{1 + i % 9}s"}},
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "trafficpolicies", body)


def _creates_alone(custom: Any, ns: str, n: int, workers: int) -> float:
    """The same creates with no operator running (a watch open, as in the timed run): seconds."""
    rv = custom.list_namespaced_custom_object(GROUP, VERSION, ns, "trafficpolicies")["metadata"]["resourceVersion"]
    seen: dict[str, bool] = {}

    def follow() -> None:  # ends when the apiserver stops (no status ever comes to end it)
        with contextlib.suppress(Exception):
            _watch(custom, ns, n, rv, seen, threading.Event(), [])

    threading.Thread(target=follow, daemon=True).start()
    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda i: _create(custom, ns, i), range(n)))
    return time.monotonic() - started


def _watch(
    custom: Any, ns: str, n: int, rv: str, seen: dict[str, bool], all_done: threading.Event, at: list[float]
) -> None:
    """Follow the policies' watch from ``rv``: ``seen[name]`` = done; when all ``n`` are, the time goes to ``at``."""
    stream = watch.Watch().stream(
        custom.list_namespaced_custom_object, GROUP, VERSION, ns, "trafficpolicies", resource_version=rv,
        timeout_seconds=3600,
    )  # fmt: skip
    for event in stream:
        obj = event["object"]
        name = obj["metadata"]["name"]
        if event["type"] == "DELETED":
            seen.pop(name, None)
        else:
            seen[name] = done(obj)
        if len(seen) == n and all(seen.values()):
            at.append(time.monotonic())
            all_done.set()
            return


def _thin(progress: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """(seconds since the first create, policies done) after the creates: each change of the count, at most one a
    second."""
    out: list[tuple[float, int]] = []
    for t, c in progress[:-1]:
        if not out or (c != out[-1][1] and t - out[-1][0] >= 1.0):
            out.append((t, c))
    return out + progress[-1:]


def checkout(ref: str, into: Path) -> str:
    """The tree of ``ref`` (``git archive``: no worktree, no change to the repository) extracted into ``into``;
    returns the commit."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short=12", ref], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=REPO, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return commit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--start-timeout", type=float, default=600.0, help="setup: seconds the operator may take to be ready"
    )
    parser.add_argument("--max-debounce", type=float, default=1.0, help="the operator's --max-debounce")
    parser.add_argument("--result", default="apply", help="write bench/results/RESULT.json")
    parser.add_argument("--log", type=Path, help="keep a copy of the operator's log here (baseline: LOG.baseline)")
    parser.add_argument(
        "--observe",
        choices=("watch", "list"),
        default="watch",
        help="how the bench sees the statuses: a watch (default), or a LIST every 0.2 s (the first runs' method)",
    )
    parser.add_argument(
        "--creates-alone",
        action="store_true",
        help="first time the same creates on a fresh apiserver with no operator (figures.creates_alone_s)",
    )
    parser.add_argument(
        "--baseline", metavar="REF", help="first measure the operator of this git ref (same run, own apiserver)"
    )
    args = parser.parse_args()
    load_at_start = bench_results.load()
    result: dict[str, Any] = {}
    baseline: dict[str, Any] | None = None
    alone: float | None = None
    if args.creates_alone:
        alone = run_once(args, None, operator=False)["creates_s"]
        print(json.dumps({"creates_alone_s": alone}), flush=True)
    if args.baseline:
        with tempfile.TemporaryDirectory(prefix="meshwork-bench-baseline-") as code:
            commit = checkout(args.baseline, Path(code))
            baseline = {"ref": args.baseline, "commit": commit, **run_once(args, Path(code))}
        print(json.dumps({"baseline": baseline}, indent=2), flush=True)
    result = run_once(args, None)
    if baseline is not None:
        result["baseline"] = baseline
    if alone is not None:
        result["creates_alone_s"] = alone
    print(json.dumps(result, indent=2))
    bench_results.write(args.result, result, load_at_start, notes="first create -> all Accepted+Programmed")
    return 0 if result["all_accepted_and_programmed_s"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
