"""`make conformance`: the upstream Gateway API mesh conformance suite on the real cluster tier.

By default this script owns the cluster for the run, exactly like a cluster-tier pytest session: it starts the real
single-node cluster (egress guard first; one per machine, behind the lock, which it holds for the whole run),
imports Meshwork's images of `make images` (``$MESHWORK_IMAGES_CACHE`` or ~/.cache/meshwork/images), installs the
chart as e2e/ does, and at the end uninstalls it and takes the cluster down. With ``--use-running`` it uses a
cluster already up (`make k8s-cluster`) where Meshwork is installed, and starts nothing. Then it

1. applies upstream's v1.6.1 CRDs (experimental channel: a superset of standard that also holds XMesh) with
   server-side apply (scripts/gateway-api/fetch-crds.sh fetched them from the Go module proxy);
2. imports the echo image built by scripts/gateway-api/build-echo-image.sh into the cluster's containerd under
   the name the suite's manifests use (they say imagePullPolicy: IfNotPresent, so nothing is pulled);
3. creates the XMesh ``meshwork`` (spec.controllerName: meshwork.io/mesh-controller), whose status Meshwork fills
   with its supported features, and waits for them;
4. runs the compiled suite (conformance/, ``go test -tags conformance -c``) with profiles MESH-HTTP,MESH-GRPC,
   ``--mesh-name meshwork`` and the injection namespace label, and writes the report to
   docs/conformance/meshwork-<version>-report.yaml.

It exits non-zero with the reason when a prerequisite is missing; it never writes a report it did not get from the
suite. The suite's own log goes to stdout; the wall time of each phase is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
XMESH = {
    "apiVersion": "gateway.networking.x-k8s.io/v1alpha1",
    "kind": "XMesh",
    "metadata": {"name": "meshwork"},
    "spec": {"controllerName": "meshwork.io/mesh-controller", "description": "Meshwork"},
}


#: The suite's mesh-only setup (utils/suite/suite.go, v1.6.1) waits for Ready pods in these two namespaces too, but
#: only its Gateway base manifests create them: with MESH profiles alone it would wait until its timeout and fail.
#: No mesh test uses them; one echo pod in each (outside the mesh) lets the wait finish.
BASE_NAMESPACES = ("gateway-conformance-app-backend", "gateway-conformance-web-backend")
ECHO_IMAGE = "registry.k8s.io/gateway-api/echo-advanced:v1.5.1"


def placeholders() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for ns in BASE_NAMESPACES:
        out.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        labels = {"app": "meshwork-conformance-placeholder"}
        container = {"name": "echo", "image": ECHO_IMAGE, "imagePullPolicy": "Never", "args": ["--port=8080"]}
        out.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "placeholder", "namespace": ns},
                "spec": {
                    "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
                },
            }
        )
    return out


def fail(message: str) -> int:
    print(f"[conformance] ERROR: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--crds", type=Path, required=True, help="directory with experimental.yaml (fetch-crds.sh)")
    p.add_argument("--echo-image", type=Path, required=True, help="OCI archive (build-echo-image.sh)")
    p.add_argument("--suite", type=Path, required=True, help="the compiled conformance test binary")
    p.add_argument("--version", required=True)
    p.add_argument("--timeout", default="60m")
    p.add_argument("--lock-timeout", type=float, default=1800.0, help="how long to wait for the cluster's lock (s)")
    p.add_argument("--use-running", action="store_true", help="use a cluster already up with Meshwork installed")
    p.add_argument("--run", default="", help="only these tests (the suite's --run-test, for debugging)")
    p.add_argument(
        "--report-dir",
        type=Path,
        default=ROOT / "docs" / "conformance",
        help="where the report goes (make test writes it outside the checkout; make conformance to docs/conformance)",
    )
    args = p.parse_args(argv)

    sys.path.insert(0, str(ROOT / "operator"))
    sys.path.insert(0, str(ROOT))
    from mesh_operator.testing.cluster import Cluster, ClusterError, ClusterUnavailable

    began = time.monotonic()
    if args.use_running:
        try:
            cluster = Cluster(detach=True)
        except ClusterUnavailable as e:
            return fail(f"the real cluster tier cannot run here: {e}")
        if not cluster.alive():
            return fail("the real cluster is not up: `make k8s-cluster`, then install Meshwork from the chart")
        if not _meshwork_ready(cluster):
            return fail("Meshwork is not installed (no available Deployment in meshwork-system): install the chart")
        return _run(cluster, args, {"cluster": 0.0})
    try:
        cluster = Cluster(lock_timeout=args.lock_timeout)
        cluster.up()
    except ClusterError as e:
        return fail(f"the real cluster tier cannot run here: {e}")
    phases = {"cluster up": time.monotonic() - began}
    try:
        images = _import_meshwork_images(cluster)
        from e2e.kit import install_mesh

        t = time.monotonic()
        install_mesh(cluster, images)
        phases["meshwork install"] = time.monotonic() - t
        return _run(cluster, args, phases)
    finally:
        t = time.monotonic()
        problems = cluster.down()
        print(f"[conformance] cluster down in {time.monotonic() - t:.0f} s", file=sys.stderr)
        for problem in problems:
            print(f"[conformance] WARNING: teardown: {problem}", file=sys.stderr)


def _meshwork_ready(cluster: Any) -> bool:
    ready = cluster.kubectl("get", "deployments", "-n", "meshwork-system", "-o", "json", check=False)
    deployments = json.loads(ready or "{}").get("items") or []
    return any((d.get("status") or {}).get("availableReplicas") for d in deployments)


def _import_meshwork_images(cluster: Any) -> dict[str, str]:
    env = os.environ.get("MESHWORK_IMAGES_CACHE")
    folder = Path(env) if env else Path.home() / ".cache" / "meshwork" / "images"
    refs = {}
    for name in ("control-plane", "sidecar"):
        archive, ref = folder / f"{name}.oci.tar", folder / f"{name}.ref"
        if not (archive.is_file() and ref.is_file()):
            raise SystemExit(fail(f"{archive} missing: run `make images`"))
        image = ref.read_text().strip()
        cluster.import_image(archive, image.rsplit(":", 1)[0])
        refs[name] = image
    return refs


def _run(cluster: Any, args: argparse.Namespace, phases: dict[str, float]) -> int:
    t = time.monotonic()
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(args.crds / "experimental.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    cluster.import_image(args.echo_image, "registry.k8s.io/gateway-api/echo-advanced")
    # The operator discovers the Gateway API kinds at start: restart it now that the CRDs are served.
    cluster.kubectl("rollout", "restart", "deployment", "-n", "meshwork-system", check=False)
    cluster.kubectl("rollout", "status", "deployment", "-n", "meshwork-system", "--timeout=180s", check=False)
    cluster.apply([XMESH, *placeholders()])
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        out = cluster.kubectl("get", "xmeshes.gateway.networking.x-k8s.io", "meshwork", "-o", "json", check=False)
        if (json.loads(out or "{}").get("status") or {}).get("supportedFeatures"):
            break
        time.sleep(1)
    else:
        return fail("XMesh meshwork never got supportedFeatures: is the operator watching the Gateway API?")
    phases["CRDs, echo image, XMesh"] = time.monotonic() - t

    report = args.report_dir / f"meshwork-{args.version}-report.yaml"
    report.parent.mkdir(parents=True, exist_ok=True)
    tmp = report.with_suffix(".yaml.tmp")
    argv_suite = [
        str(args.suite),
        "-test.v",
        f"-test.timeout={args.timeout}",
        "--conformance-profiles=MESH-HTTP,MESH-GRPC",
        "--gateway-class=",  # mesh only: no GatewayClass to read features from
        "--mesh-name=meshwork",
        "--namespace-labels=meshwork.io/inject=enabled",
        f"--report-output={tmp}",
        "--organization=meshwork",
        "--project=meshwork",
        "--url=https://meshwork.io",
        f"--version={args.version}",
        "--contact=@meshwork/maintainers",
    ]
    if args.run:
        argv_suite.append(f"--run-test={args.run}")
    started = time.monotonic()
    env = {"KUBECONFIG": str(cluster.kubeconfig_path), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    lines: list[str] = []
    with subprocess.Popen(argv_suite, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as suite:
        assert suite.stdout is not None
        for line in suite.stdout:  # the suite's own log, shown as it runs and kept for the test summary
            sys.stdout.write(line)
            lines.append(line.rstrip("\n"))
    returncode = suite.returncode
    phases["suite"] = time.monotonic() - started
    print(f"[conformance] suite exited {returncode}", file=sys.stderr)
    if returncode != 0:
        diagnose(cluster)
    if tmp.is_file() and not args.run:
        tmp.replace(report)
        summary = report.with_name(report.name.replace("-report.yaml", "-tests.txt"))
        summary.write_text(test_summary(lines, args.version))
        print(f"[conformance] report: {report}; per test: {summary}", file=sys.stderr)
    for phase, seconds in phases.items():
        print(f"[conformance] {phase}: {seconds:.0f} s", file=sys.stderr)
    return returncode


def diagnose(cluster: Any) -> None:
    """After a failed suite, before the cluster goes: what a maintainer needs to tell a flake from a bug. The pods of
    the suite's namespaces, each proxy's sync state as the control plane sees it, the control plane's log, and the
    tail of every sidecar's log in the suite's namespaces."""

    def show(title: str, text: str) -> None:
        print(f"[conformance] ---- {title}", file=sys.stderr)
        print(text.rstrip()[-6000:], file=sys.stderr)

    from e2e.kit import Mesh

    mesh = Mesh(cluster, {})
    show("pods", cluster.kubectl("get", "pods", "-A", "-o", "wide", check=False))
    pods = json.loads(cluster.kubectl("get", "pods", "-A", "-o", "json", check=False) or "{}").get("items") or []
    try:
        for name in sorted(p["metadata"]["name"] for p in mesh.control_plane_pods()):
            show(f"{name} /debug/syncz", json.dumps(mesh.admin("/debug/syncz", name), indent=1))
    except Exception as e:  # a diagnosis must not hide the suite's own failure
        show("/debug/syncz", f"unavailable: {e}")
    show("control-plane log", mesh.logs())
    for pod in pods:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        if ns.startswith("gateway-conformance-mesh"):
            log = cluster.kubectl("logs", "-n", ns, name, "-c", "meshwork-proxy", "--tail=40", check=False)
            show(f"{ns}/{name} sidecar log", log)


def test_summary(lines: list[str], version: str) -> str:
    """Each mesh test's outcome as the suite logged it (``--- PASS/FAIL/SKIP: TestMeshConformance/<name>``), and
    for each skipped or failed one the suite's own reason (its ``Skipping ...`` line, or its error lines)."""
    outcome = re.compile(r"^    --- (PASS|FAIL|SKIP): TestMeshConformance/(Mesh\w+) \(")
    skipping = re.compile(r"Skipping (Mesh\w+): (.*)$")
    results = {m.group(2): m.group(1) for m in map(outcome.match, lines) if m}
    reasons: dict[str, list[str]] = {}
    for line in lines:
        if m := skipping.search(line):
            reasons.setdefault(m.group(1), []).append(m.group(2))
    # a failed subtest: its name and the last complaint the suite logged while it ran
    run = re.compile(r"^=== RUN\s+TestMeshConformance/(Mesh\w+)/(\S+)")
    failed = re.compile(r"^\s+--- FAIL: TestMeshConformance/(Mesh\w+)/(\S+)")
    last: dict[tuple[str, str], str] = {}
    current: tuple[str, str] | None = None
    for line in lines:
        if m := run.match(line):
            current = (m.group(1), m.group(2))
        elif m := failed.match(line):
            why = last.get((m.group(1), m.group(2)), "")
            reasons.setdefault(m.group(1), []).append(f"{m.group(2)} failed: {why[:300]}".rstrip(": "))
        elif current is not None and re.search(r"failed|Error:", line):
            last[current] = re.sub(r"^\s*\S+\.go:\d+: \S+: ", "", line).strip()
    out = [
        f"# Gateway API mesh conformance (v1.6.1), Meshwork {version}: each mesh test's outcome, from the suite's log",
        "# (generated by scripts/gateway-api/conformance.py; the report beside this file is the suite's own).",
    ]
    for name in sorted(results):
        why = "; ".join(reasons.get(name, [])) if results[name] != "PASS" else ""
        out.append(f"{results[name]}  {name}" + (f"  -- {why}" if why else ""))
    counts = {k: sum(1 for v in results.values() if v == k) for k in ("PASS", "FAIL", "SKIP")}
    out.append(f"# {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
