"""Where every benchmark writes its figures: ``bench/results/<bench>.json``, with the machine and the commit.

``bench/report.py`` regenerates the benchmark table from these files, so no figure is copied by hand. A result file
holds one run: ``{"bench", "when", "commit", "dirty", "machine": {...}, "load": {...}, "command", "figures": {...}}``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def _envoy_version() -> str:
    try:
        from xds_server.envoy_binary import envoy_path

        out = subprocess.run([str(envoy_path()), "--version"], capture_output=True, text=True, timeout=30).stdout
    except Exception:
        return "unknown"
    for token in out.split():
        parts = token.split("/")
        if len(parts) >= 2 and parts[1][:1].isdigit():
            return parts[1]  # <sha>/<version>/<status>/<build type>/<ssl>
    return out.strip().splitlines()[-1] if out.strip() else "unknown"


def machine() -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "envoy": _envoy_version(),
    }


def load() -> dict[str, Any]:
    """The machine's load when the run started and ended (other engineers share it): 1/5/15-minute averages."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return {}
    return {"loadavg_1m": round(one, 2), "loadavg_5m": round(five, 2), "loadavg_15m": round(fifteen, 2)}


def write(
    bench: str, figures: dict[str, Any], load_at_start: dict[str, Any], notes: str = "", name: str | None = None
) -> Path:
    """Write ``bench/results/<name or bench>.json`` and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {
        "bench": bench,
        "when": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": _git("rev-parse", "--short=12", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "machine": machine(),
        "load": {"start": load_at_start, "end": load()},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "notes": notes,
        "figures": figures,
    }
    path = RESULTS / f"{name or bench}.json"
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    print(f"  wrote {path.relative_to(ROOT)}", flush=True)
    return path
