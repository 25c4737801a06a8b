"""Translate the upstream mesh conformance manifests offline and show each route's verdict per parent.

Reads conformance/tests/mesh/*.yaml of sigs.k8s.io/gateway-api/conformance v1.6.1 from the Go module cache
(`go mod download sigs.k8s.io/gateway-api/conformance@v1.6.1`), places them in an inventory shaped like the suite's
mesh manifests (Services echo, echo-v1, echo-v2 with their first port, 80, as Meshwork models it) and prints, per
route, Accepted/ResolvedRefs with the reasons. A quick way to see what the real suite will trip over before running
it on the cluster; it proves nothing about data-plane behaviour.

    .venv/bin/python scripts/gateway-api/precheck.py [--dir PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NS = "gateway-conformance-mesh"


def inventory() -> str:
    lines = ["apiVersion: meshwork.io/v1alpha1", "kind: Inventory", "metadata: {name: conformance}", "spec:"]
    lines.append("  services:")
    for i, (name, ns) in enumerate(
        [("echo", NS), ("echo-v1", NS), ("echo-v2", NS), ("echo-v1", f"{NS}-consumer")], start=1
    ):
        lines += [
            f"    - name: {name}",
            f"      namespace: {ns}",
            "      ports: [{port: 80}]",
            f"      instances: [{{name: {name}-{i}, port: {9000 + i}, sidecar: {{inboundPort: {15000 + i}}}}}]",
        ]
    return "\n".join(lines) + "\n"


def module_dir() -> Path:
    out = subprocess.run(
        ["go", "mod", "download", "-json", "sigs.k8s.io/gateway-api/conformance@v1.6.1"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT / "conformance",
    ).stdout
    return Path(json.loads(out)["Dir"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", type=Path, help="the conformance module's directory (default: from the Go module cache)")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "operator"))
    from mesh_operator.loader import load_text
    from mesh_operator.translate import translate_mesh

    tests = (args.dir or module_dir()) / "tests" / "mesh"
    for f in sorted(tests.glob("*.yaml")):
        loaded = load_text(inventory() + "---\n" + f.read_text(), f.name)
        if loaded.errors:
            print(f"{f.name}: refused: {'; '.join(str(e) for e in loaded.errors)}")
            continue
        for key, outcome in sorted(translate_mesh(loaded.state()).routes.items(), key=lambda kv: str(kv[0])):
            for po in outcome.parents:
                verdict = f"Accepted={po.accepted_reason} ResolvedRefs={po.resolved_reason}"
                why = "; ".join(str(v) for v in po.violations + po.ref_problems)
                print(f"{f.name}: {key} -> {po.parent.name}: {verdict}{f' ({why})' if why else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
