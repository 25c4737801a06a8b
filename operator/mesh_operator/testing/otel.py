"""A real OpenTelemetry Collector for tests (OTLP/gRPC receiver on 127.0.0.1, file exporter), built by
``scripts/otelcol/build.sh``, and the spans it received.

    with Collector(tmp_path) as collector:
        mesh.mesh(tracing={"collector": {"address": "127.0.0.1", "port": collector.port}, "samplingPercent": 100})
        ...
        spans = collector.wait_spans(4)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from xds_server.ports import free_port

ROOT = Path(__file__).resolve().parents[3]
BUILD = ROOT / "scripts" / "otelcol" / "build.sh"


def cached_collector_binary() -> Path | None:
    """The collector ``scripts/otelcol/build.sh`` built earlier, without building it (``None`` when there is none)."""
    cache = Path(os.environ.get("MESHWORK_OTELCOL_CACHE") or Path.home() / ".cache" / "meshwork" / "otelcol")
    builds = [p for p in cache.glob("*/otelcol-meshwork") if os.access(p, os.X_OK)]
    return max(builds, key=lambda p: p.stat().st_mtime) if builds else None


def collector_binary() -> Path:
    out = subprocess.run([str(BUILD)], check=True, capture_output=True, text=True).stdout.strip().splitlines()
    return Path(out[-1])


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    service: str
    attributes: dict[str, Any]


def _attrs(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {a["key"]: next(iter(a.get("value", {}).values()), None) for a in items}


class Collector:
    def __init__(self, directory: Path, *, port: int | None = None, binary: Path | None = None) -> None:
        """``port``: the OTLP/gRPC port (default: a free one); ``binary``: default: built on first use."""
        self.dir = directory / "otelcol"
        self.port = port or free_port()
        self.binary = binary
        self.spans_file = self.dir / "spans.json"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Collector:
        self.dir.mkdir(parents=True, exist_ok=True)
        config = {
            "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{self.port}"}}}},
            "exporters": {"file": {"path": str(self.spans_file), "flush_interval": "100ms"}},
            "service": {
                "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
                "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["file"]}},
            },
        }
        (self.dir / "config.yaml").write_text(yaml.safe_dump(config))
        binary = self.binary or collector_binary()
        with (self.dir / "collector.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [str(binary), "--config", str(self.dir / "config.yaml")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited: {(self.dir / 'collector.log').read_text()[-3000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return self
            time.sleep(0.1)
        raise TimeoutError("the collector does not listen")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def spans(self) -> list[Span]:
        if not self.spans_file.exists():
            return []
        out = []
        text = self.spans_file.read_text()
        # The exporter writes one JSON document per line; a line without its newline is still being written.
        complete = text[: text.rfind("\n") + 1]
        for line in complete.splitlines():
            if not line.strip():
                continue
            for rs in json.loads(line).get("resourceSpans", []):
                service = _attrs(rs.get("resource", {}).get("attributes", [])).get("service.name", "")
                for ss in rs.get("scopeSpans", []):
                    for s in ss.get("spans", []):
                        out.append(
                            Span(
                                s["traceId"],
                                s["spanId"],
                                s.get("parentSpanId", ""),
                                s.get("name", ""),
                                service,
                                _attrs(s.get("attributes", [])),
                            )
                        )
        return out

    def wait_spans(self, n: int, *, timeout: float = 30.0) -> list[Span]:
        """Until at least ``n`` spans arrived (Envoy flushes spans every 5 s); then all of them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.spans()
            if len(found) >= n:
                return found
            time.sleep(0.2)
        raise TimeoutError(f"{len(self.spans())} spans after {timeout}s, expected {n}")
