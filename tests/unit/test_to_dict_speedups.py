"""The cached type hints and validators behind ``proto_dict`` change nothing: the proto-JSON of every resource of
the example mesh and three golden cases is the same as betterproto2's own, computed in a process without them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]

SCRIPT = """
import json, sys
from pathlib import Path
sys.path[:0] = [".", "operator"]
from mesh_operator.loader import load_paths, load_text
from mesh_operator.translate import translate_mesh
from xds_server.translate import translate_proxy
from xds_server import serialize
if sys.argv[1] == "original":
    serialize._to_dict_speedups.install = lambda: None  # leave betterproto2 as shipped
states = [load_paths(["examples/mesh"]).state()]
golden = sorted(Path("tests/golden/cases").glob("*/input.yaml"))[:3]
states += [load_text(p.read_text(), str(p)).state() for p in golden]
out = []
for state in states:
    for node, cfg in sorted(translate_mesh(state).proxies.items()):
        res = translate_proxy(cfg)
        for msg in (*res.listeners, *res.route_configs, *res.clusters, *res.cluster_load_assignments):
            out.append(serialize.proto_dict(msg))
print(json.dumps(out, sort_keys=True))
"""


def _render(mode: str) -> list[object]:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], cwd=ROOT, capture_output=True, text=True, timeout=600, check=True
    )
    result: list[object] = json.loads(proc.stdout)
    return result


def test_proto_dict_with_the_speedups_equals_betterproto2s_own() -> None:
    fast, original = _render("fast"), _render("original")
    assert len(fast) > 50
    assert fast == original
