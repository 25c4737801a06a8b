"""Child processes of local mode: Envoy sidecars and workload commands.

Each runs in its own session (process group) so Ctrl-C in the terminal reaches only the runner, which then stops
every child it started: SIGTERM to the group, SIGKILL after a grace period. A pid file per process lets a
restarted runner adopt children that survived a crash of the previous one (sidecars keep serving their last
config while the control plane is away).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    workdir: Path
    log_file: Path
    pid_file: Path
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    pid: int | None = None
    _popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.adopt():
            log.info("adopted %s (pid %d) from a previous run", self.name, self.pid)
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        self.pid = self._popen.pid
        self.pid_file.write_text(f"{self.pid}\n{_fingerprint(self.argv)}\n")
        log.info("started %s (pid %d)", self.name, self.pid)

    def adopt(self) -> bool:
        """Take over a live process a previous runner started with the same command line."""
        try:
            pid_text, fingerprint = self.pid_file.read_text().split("\n")[:2]
            pid = int(pid_text)
        except (OSError, ValueError):
            return False
        if fingerprint != _fingerprint(self.argv) or not pid_alive(pid) or not _same_command(pid, self.argv):
            return False
        self.pid = pid
        return True

    @property
    def running(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return self.pid is not None and pid_alive(self.pid)

    def stop(self, grace: float = 5.0) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self.running:
            time.sleep(0.05)
        if self.running:
            log.warning("%s did not stop in %.0fs; killing it", self.name, grace)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        if self._popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=grace)
        else:
            _reap(self.pid, grace)
        self.pid_file.unlink(missing_ok=True)
        self.pid = None


def _fingerprint(argv: list[str]) -> str:
    return "\x1f".join(argv)


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


def _same_command(pid: int, argv: list[str]) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid file's fingerprint
    return [c.decode(errors="replace") for c in cmdline if c] == argv


def _reap(pid: int, grace: float) -> None:
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
