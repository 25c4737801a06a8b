"""`make conformance`: the upstream Gateway API mesh conformance suite on the real cluster tier.

Prerequisites, in order (each checked here, none started here): the real single-node cluster is up
(`make k8s-cluster`) and Meshwork is installed on it from the chart (the control plane Deployment in
meshwork-system is available). Then this script

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
suite.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
XMESH = {
    "apiVersion": "gateway.networking.x-k8s.io/v1alpha1",
    "kind": "XMesh",
    "metadata": {"name": "meshwork"},
    "spec": {"controllerName": "meshwork.io/mesh-controller", "description": "Meshwork"},
}


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
    args = p.parse_args(argv)

    sys.path.insert(0, str(ROOT / "operator"))
    from mesh_operator.testing.cluster import Cluster, ClusterUnavailable

    try:
        cluster = Cluster(detach=True)
    except ClusterUnavailable as e:
        return fail(f"the real cluster tier cannot run here: {e}")
    if not cluster.alive():
        return fail("the real cluster is not up: `make k8s-cluster`, then install Meshwork from the chart")
    ready = cluster.kubectl("get", "deployments", "-n", "meshwork-system", "-o", "json", check=False)
    deployments = json.loads(ready or "{}").get("items") or []
    if not any((d.get("status") or {}).get("availableReplicas") for d in deployments):
        return fail("Meshwork is not installed (no available Deployment in meshwork-system): install the chart first")

    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(args.crds / "experimental.yaml"))
    cluster.import_image(args.echo_image, "registry.k8s.io/gateway-api/echo-advanced")
    cluster.apply([XMESH])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        out = cluster.kubectl("get", "xmeshes.gateway.networking.x-k8s.io", "meshwork", "-o", "json", check=False)
        if (json.loads(out or "{}").get("status") or {}).get("supportedFeatures"):
            break
        time.sleep(1)
    else:
        return fail("XMesh meshwork never got supportedFeatures: is the operator watching the Gateway API?")

    report = ROOT / "docs" / "conformance" / f"meshwork-{args.version}-report.yaml"
    tmp = report.with_suffix(".yaml.tmp")
    argv_suite = [
        str(args.suite),
        "-test.v",
        f"-test.timeout={args.timeout}",
        "--conformance-profiles=MESH-HTTP,MESH-GRPC",
        "--mesh-name=meshwork",
        "--namespace-labels=meshwork.io/inject=enabled",
        f"--report-output={tmp}",
        "--organization=meshwork",
        "--project=meshwork",
        "--url=https://meshwork.io",
        f"--version={args.version}",
        "--contact=@meshwork/maintainers",
    ]
    started = time.monotonic()
    env = {"KUBECONFIG": str(cluster.kubeconfig_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(argv_suite, env=env, check=False)
    print(f"[conformance] suite exited {done.returncode} after {time.monotonic() - started:.0f} s", file=sys.stderr)
    if tmp.is_file():
        tmp.replace(report)
        print(f"[conformance] report: {report}", file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
