"""``bench/push.py --client-impl go``: the synthetic ADS clients in one Go process (``bench/adsload``), not Python.

Python clients cost about as much CPU per response as the server under test (h2 and grpclib on both sides), so on a
2-core machine at 10,000 clients the figure measures the harness as much as the server. ``adsload`` speaks the same
ADS as the light Python client (its own gRPC connection per client over loopback, wildcard CDS + LDS, envelope-only
decoding, an immediate ACK) at a few tens of microseconds per response. Same interface as ``push.Shards``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent


def build() -> Path:
    """The adsload binary (built from the Go module proxy on first use, then cached)."""
    out = subprocess.run(
        [str(ROOT / "scripts/bench/build-adsload.sh")], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


class GoShards:
    """Every fake client in one ``adsload`` process; client i dials ``ports[i % len(ports)]``."""

    def __init__(self, ports: list[int], nodes: list[str], delta: bool) -> None:
        self._nodes_file = tempfile.NamedTemporaryFile("w", suffix=".nodes", delete=False)  # noqa: SIM115
        self._nodes_file.write("\n".join(nodes))
        self._nodes_file.close()
        argv = [
            str(build()),
            "-addrs",
            ",".join(f"127.0.0.1:{p}" for p in ports),
            "-nodes",
            self._nodes_file.name,
        ]
        if delta:
            argv.append("-delta")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.procs = [self.proc]

    def _line(self, timeout: float) -> str:
        """The next line adsload writes, read in a thread so a hung process cannot hang the benchmark."""
        box: list[str] = []
        out: IO[str] | None = self.proc.stdout
        assert out is not None
        reader = threading.Thread(target=lambda: box.append(out.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not box:
            raise TimeoutError(f"adsload did not answer in {timeout:.0f} s")
        line = box[0].strip()
        if not line:
            raise RuntimeError(f"adsload exited ({self.proc.poll()})")
        if line.startswith("error "):
            raise RuntimeError(f"adsload: {line[6:]}")
        return line

    async def ready(self, timeout: float) -> float:
        line = await asyncio.to_thread(self._line, timeout)
        word, _, seconds = line.partition(" ")
        if word != "ready":
            raise RuntimeError(f"adsload: unexpected {line!r}")
        return float(seconds)

    async def acked(self, version: str, timeout: float) -> dict[str, float]:
        """node -> monotonic time of its ACK of CDS ``version`` (adsload reports wall-clock times)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"wait {version} {timeout}\n")
        self.proc.stdin.flush()
        line = await asyncio.to_thread(self._line, timeout + 10)
        got: dict[str, Any] = json.loads(line)["acked"]
        offset = time.monotonic() - time.time()  # one clock to the other, taken now (both tick in step)
        return {node: float(t) + offset for node, t in got.items()}

    def stop(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.write("stop\n")
                self.proc.stdin.close()
            self.proc.wait(15)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(5)
        Path(self._nodes_file.name).unlink(missing_ok=True)
