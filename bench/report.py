"""Regenerate the benchmark table from ``bench/results/*.json`` (no figure is copied by hand).

    .venv/bin/python bench/report.py                      # print the Markdown table
    .venv/bin/python bench/report.py --write docs/notes/perf.md   # replace the table between the markers

The table goes between ``<!-- bench-table:start -->`` and ``<!-- bench-table:end -->`` of the file given with
``--write`` (the README keeps the same markers). Each row names its result file, commit and machine load.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"


def load_results(directory: Path = RESULTS) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def _src(doc: dict[str, Any], name: str) -> str:
    load = doc.get("load", {}).get("start", {})
    dirty = "+dirty" if doc.get("dirty") else ""
    return f"`{name}.json` @ {doc.get('commit', '?')}{dirty}, load {load.get('loadavg_1m', '?')}"


def _serialize_rows(name: str, doc: dict[str, Any]) -> list[str]:
    rows = []
    for size, row in doc["figures"].items():
        s = row.get("serialize")
        if not s:
            continue
        ratio = s["ours_serialize_s"] / s["serialize_s"]
        text = (
            f"{s['ours_serialize_s'] * 1000:.0f} ms vs upb {s['serialize_s'] * 1000:.1f} ms = **{ratio:.1f}x**"
            f" (min of {s.get('repeats', 1)}, CPU time)"
        )
        if "baseline_serialize_s" in s:
            text += f"; before ({s['baseline']}): {s['baseline_serialize_s'] / s['serialize_s']:.1f}x"
        rows.append(
            f"| Serialization, edge proxy of {size} ({s['resources']} resources, {s['bytes'] / 1e6:.1f} MB) "
            f"| {text} | ≤ 5x upb | {_src(doc, name)} |"
        )
    return rows


def _translate_rows(name: str, doc: dict[str, Any]) -> list[str]:
    rows = []
    for size, row in doc["figures"].items():
        if "mesh_full_s" not in row:
            continue
        rows.append(
            f"| Full translation, {size} ({row['mesh_proxies']} proxies, {row['mesh_resources']} resources) "
            f"| {row['mesh_full_s']:.2f} s, peak RSS {row['peak_rss_mb']:.0f} MB; one policy change "
            f"{row['one_policy_change_s'] * 1000:.0f} ms | – | {_src(doc, name)} |"
        )
    return rows


def _incremental_rows(name: str, doc: dict[str, Any]) -> list[str]:
    rows = []
    label = doc.get("label") or (name if name != doc.get("bench") else "")  # e.g. incremental-main: a baseline
    label = f" ({label})" if label else ""
    for size, r in doc["figures"].items():
        if r.get("policy_change_share_of_full") is not None:
            share = (
                f"{r['policy_change_share_of_full'] * 100:.2f} % of a cold full build of {r['full_build_s']:.1f} s; "
                f"warm full {r['full_build_warm_s']:.2f} s"
            )
        else:  # --skip-full: the share of the first (whole-mesh) incremental build's CPU time
            share = (
                f"{r['policy_change_cpu_share_of_first_build'] * 100:.3f} % of the whole-mesh build's "
                f"{r['incremental_first_build_cpu_s']:.1f} s CPU"
            )
        mins = ""
        if "policy_change_cpu_min_s" in r:
            mins = f", min {r['policy_change_cpu_min_s'] * 1000:.1f}"
        emin = f", min {r['endpoint_change_cpu_min_s'] * 1000:.1f}" if "endpoint_change_cpu_min_s" in r else ""
        publish = ""
        if r.get("policy_publish_cpu_s") is not None:
            publish = (
                f"; then publishing (certificates, snapshots + secrets into the xDS cache, status): policy change "
                f"{r['policy_publish_cpu_s'] * 1000:.1f} ms CPU, endpoint change "
                f"{r['endpoint_publish_cpu_s'] * 1000:.1f} ms CPU"
            )
        rows.append(
            f"| Incremental translation{label}, {size} ({r['proxies']} proxies, {r['resources']} resources) "
            f"| one policy change {r['policy_change_s'] * 1000:.1f} ms wall / {r['policy_change_cpu_s'] * 1000:.1f} ms "
            f"CPU{mins} ({share}); one endpoint change {r['endpoint_change_s'] * 1000:.1f} ms "
            f"wall / {r['endpoint_change_cpu_s'] * 1000:.1f} ms CPU{emin}, EDS only: {r['endpoint_change_only_eds']}"
            f"{publish} "
            f"| ≤ 1 % of full, ≤ 20 ms at 5k; endpoint ≤ 5 ms; flat within 2x | {_src(doc, name)} |"
        )
    return rows


def _kube_incremental_rows(name: str, doc: dict[str, Any]) -> list[str]:
    def fig(r: dict[str, Any]) -> str:
        return (
            f"{r['readiness_flip_s'] * 1000:.1f} ms wall / {r['readiness_flip_cpu_s'] * 1000:.1f} ms CPU (events + "
            f"snapshot {r['events_and_snapshot_s'] * 1000:.1f} ms, build {r['build_s'] * 1000:.1f} ms"
            + (f"; back to back {b * 1000:.2f} ms)" if (b := r.get("readiness_flip_back_to_back_s")) else ")")
        )

    rows = []
    for size, row in doc["figures"].items():
        ours = row["ours"]
        base = f"; {row['baseline_label']}: {fig(row['baseline'])}" if "baseline" in row else ""
        rows.append(
            f"| Kubernetes mode, one pod's readiness flip (watch event -> store snapshot -> build), {size} services "
            f"({ours['proxies']} proxies) | {fig(ours)}, edge only EDS: {ours['edge_only_eds']}{base} "
            f"| ≤ 5 ms; flat within 2x | {_src(doc, name)} |"
        )
    return rows


def _creates(f: dict[str, Any]) -> str:
    """The creates' share, and what followed the last create (with how the bench saw the statuses)."""
    text = f"creates {f['creates_s']:.1f} s"
    if f.get("after_last_create_s") is not None:
        text += f", then {f['after_last_create_s']:.1f} s"
    if f.get("observed_by") == "watch":
        text += ", seen on a watch"
    return text


def _apply_rows(name: str, doc: dict[str, Any]) -> list[str]:
    f = doc["figures"]
    done = f.get("all_accepted_and_programmed_s")
    text = f"{done:.1f} s" if done is not None else f"not finished ({f['done']} done)"
    base = f.get("baseline")
    before = ""
    if base is not None:
        b = base.get("all_accepted_and_programmed_s")
        b_text = f"{b:.1f} s" if b is not None else "not finished"
        before = f"; same run, operator of `{base['ref']}` ({base['commit']}): {b_text} ({_creates(base)})"
    if f.get("creates_alone_s") is not None:
        before += f"; the creates alone, no operator: {f['creates_alone_s']:.1f} s"
    return [
        f"| Apply, {f['policies']} TrafficPolicies on the test apiserver | all Accepted+Programmed in {text} "
        f"({_creates(f)}); {f['status_writes']} status writes; operator RSS peak "
        f"{f['operator_rss_mib']['peak']:.0f} MiB{before} | ≤ 10 s for 1,000 | {_src(doc, name)} |"
    ]


def _apply_preflight_rows(name: str, doc: dict[str, Any]) -> list[str]:
    f = doc["figures"]
    labels = {
        "split": "binary bootstrap in two parts in parallel",
        "binary": "binary bootstrap",
        "json": "proto-JSON (before)",
    }
    shown = [
        f"{label} {b['wall_s']:.1f} s wall, {b['cpu_s']:.1f} + {b['envoy_cpu_s']:.1f} (Envoy) CPU-s"
        for v, label in labels.items()
        if (b := f["best"].get(v)) is not None
    ]
    return [
        f"| Pre-flight, {f['services']} new policies in rounds of {f['per_round']} (bench/apply.py's mesh, no "
        f"apiserver) | {'; '.join(shown)} | – | {_src(doc, name)} |"
    ]


def _status_writes_rows(name: str, doc: dict[str, Any]) -> list[str]:
    f = doc["figures"]
    rates = ", ".join(f"{r['writes_per_s']:.0f}/s at {r['concurrency']}" for r in f["status_writes"])
    return [
        f"| Status writes on the idle test apiserver, {f['policies']} policies | {rates}; creates "
        f"{f['creates_per_s']:.0f}/s (8 client threads) | – | {_src(doc, name)} |"
    ]


def _dataplane_rows(name: str, doc: dict[str, Any]) -> list[str]:
    f = doc["figures"]
    rows = []
    d = f["variants"][next(iter(f["variants"]))]["direct"]
    rows.append(
        f"| Data plane direct (fortio, {f['qps']} rps, {f['payload_bytes']} B, {f['connections']} conns) "
        f"| p50 {d['p50']:.2f} / p90 {d['p90']:.2f} / p99 {d['p99']:.2f} / max {d['max_ms']:.1f} ms | – "
        f"| {_src(doc, name)} |"
    )
    for variant, v in f["variants"].items():
        a = v["added_ms"]
        rss = ", ".join(f"{x:.0f}" for x in v["sidecar_rss_mb"])
        what = (
            "two bare Envoys (plain HTTP, router only: the two-hop floor)"
            if variant == "bare-envoy"
            else f"two sidecars + mTLS, `{variant}`"
        )
        over = v.get("added_over_bare_ms")
        above = (
            f" (above the bare floor: p50 {over['p50']:+.2f} / p90 {over['p90']:+.2f} / p99 {over['p99']:+.2f})"
            if over
            else ""
        )
        rows.append(
            f"| Data plane, {what} | added p50 +{a['p50']:.2f} / p90 +{a['p90']:.2f} / "
            f"p99 +{a['p99']:.2f} / max +{a['max_ms']:.1f} ms{above}; "
            f"{v['sidecar_vcpu_per_1k_rps']:.2f} vCPU per 1k rps per Envoy; RSS {rss} MB "
            f"| Istio +0.23 p90 / +0.30 p99 ms, 0.20 vCPU + 60 MB | {_src(doc, name)} |"
        )
    return rows


def _scope_rows(name: str, doc: dict[str, Any]) -> list[str]:
    f = doc["figures"]
    rows = []
    for setup, v in f["setups"].items():
        ratio = "" if setup == "full" else f" = **{v['rss_ratio_to_full']:.2f}x** below full"
        rows.append(
            f"| Sidecar scoping, one Envoy in a {f['services']}-service mesh, `{setup}` | {v['services']} services, "
            f"{v['envoy_clusters']:.0f} clusters, xDS {v['xds_kb']:.0f} KB; RSS {v['rss_mb']:.1f} MB{ratio} "
            f"(anonymous {v['rss_anon_mb']:.1f} MB, {v['anon_ratio_to_full']:.2f}x; admin-only Envoy "
            f"{f['floor_rss_mb']:.1f} MB) | scoped ≥ 3x below full | {_src(doc, name)} |"
        )
    return rows


def _push_rows(name: str, doc: dict[str, Any]) -> list[str]:
    nan = float("nan")
    rows = []
    for r in doc["figures"]["rows"]:
        n = r.get("client_procs")
        procs = f" in {n} client process{'es' if n > 1 else ''}" if n else ""
        if r.get("client_impl") == "go":
            procs = " in one Go process (bench/adsload)"
        server = f", server of {r['server']}" if r.get("server", "this tree") != "this tree" else ""
        if r.get("replicas", 1) > 1:
            server += f", {r['replicas']} server replicas (CPU and RSS summed)"
        rows.append(
            f"| Push, {r['clients']} ADS clients{procs} + {r['envoys']} Envoys, {r['mode']}{server} | change -> ACK "
            f"p50 "
            f"{r.get('p50_ms', nan):.0f} / p99 {r.get('p99_ms', nan):.0f} / max {r.get('max_ms', nan):.0f} ms; "
            f"server CPU {r.get('cpu_ms_push', nan):.0f} ms per push ({r.get('cpu_us_proxy', nan):.0f} µs per "
            f"stream); {r.get('rss_kb_stream', nan):.1f} KB per stream | p99 ≤ 2 s, ≤ 50 KB/stream "
            f"| {_src(doc, name)} |"
        )
    return rows


def _memory_rows(name: str, doc: dict[str, Any]) -> list[str]:
    return [
        f"| Memory, whole mesh {size} ({row['proxies']} proxies, {row['resources']} resources), fresh process "
        f"| peak RSS **{row['peak_rss_mb']:.0f} MB** (imports + objects {row['setup_rss_mb']:.0f} MB); "
        f"{row['bytes_per_proxy'] / 1024:.1f} KB per proxy, {row['bytes_per_service'] / 1024:.1f} KB per service "
        f"| ≤ 1 GB at 10k services | {_src(doc, name)} |"
        for size, row in doc["figures"].items()
    ]


def table(docs: dict[str, dict[str, Any]]) -> str:
    lines = ["| Benchmark | Figure | Goal / anchor | Source |", "|---|---|---|---|"]
    machines = set()
    for name, doc in docs.items():
        bench = doc.get("bench", name)
        m = doc.get("machine", {})
        machines.add(
            f"{m.get('cpu')} ({m.get('cores')} cores), {m.get('memory_gb')} GB, Python {m.get('python')}, "
            f"Envoy {m.get('envoy')}"
        )
        if bench in ("serialize", "translate"):
            lines += _translate_rows(name, doc) + _serialize_rows(name, doc)
        elif bench.startswith("dataplane"):
            lines += _dataplane_rows(name, doc)
        elif bench.startswith("push"):
            lines += _push_rows(name, doc)
        elif bench == "incremental":
            lines += _incremental_rows(name, doc)
        elif bench == "kube-incremental":
            lines += _kube_incremental_rows(name, doc)
        elif bench.startswith("apply-preflight"):
            lines += _apply_preflight_rows(name, doc)
        elif bench.startswith("apply"):
            lines += _apply_rows(name, doc)
        elif bench.startswith("status-writes"):
            lines += _status_writes_rows(name, doc)
        elif bench == "memory":
            lines += _memory_rows(name, doc)
        elif bench.startswith("scope"):
            lines += _scope_rows(name, doc)
    lines.append("")
    lines.append("Machine: " + "; ".join(sorted(machines)) + ". Regenerated by `bench/report.py`.")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", type=Path, help="replace the table between the markers of this file")
    p.add_argument("--results", type=Path, default=RESULTS, help="directory of result files")
    args = p.parse_args()
    text = table(load_results(args.results))
    if args.write is None:
        print(text)
        return 0
    doc = args.write.read_text()
    try:
        args.write.write_text(replace_table(doc, text))
    except ValueError as e:
        print(f"{args.write}: {e}", file=sys.stderr)
        return 1
    return 0


def replace_table(doc: str, text: str) -> str:
    """``doc`` with the part between the markers replaced by ``text``."""
    if START not in doc or END not in doc:
        raise ValueError(f"no {START} ... {END} markers")
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{text}\n{END}{tail}"


if __name__ == "__main__":
    raise SystemExit(main())
