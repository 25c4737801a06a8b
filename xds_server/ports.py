"""Free TCP ports for local listeners (test servers, local-mode sidecar admin ports), outside the ephemeral range.

Asking the kernel for port 0 and releasing it is racy in a different way than it looks: the port comes from the
ephemeral range, which is also where every outgoing connection (Envoy to its xDS server, to its upstreams) gets
its source port. Seconds later, when the test's server binds the port, an outgoing connection may hold it. Ports
below the ephemeral range are never handed out that way, and a process-wide set keeps this process from handing
out one port twice.

Several processes drawing from the same range (pytest-xdist workers, the two `make test` lanes, a control plane and
its test) can still hand out the same port between one's hand-out and its bind. With ``MESHWORK_PORT_LEASES`` set to
a directory, a port is also leased there for `LEASE_S` seconds across processes: a file per port, written under an
exclusive lock, holding the time it was handed out. (The test suite sets it; unset, nothing is written.)
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import threading
import time
from pathlib import Path

_LOCK = threading.Lock()
_HANDED_OUT: set[int] = set()
_RNG = random.Random()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_LOW, _HIGH = 20000, min(_ephemeral_start(), 32768)
#: How long a port handed out by one process is not handed out by another (bound by then, or abandoned).
LEASE_S = 900.0


def _lease(port: int) -> bool:
    """Lease `port` across processes for `LEASE_S` (True), or False if another process holds a live lease."""
    directory = os.environ.get("MESHWORK_PORT_LEASES")
    if not directory:
        return True
    Path(directory).mkdir(parents=True, exist_ok=True)
    fd = os.open(Path(directory) / str(port), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held = os.read(fd, 64).decode(errors="replace").strip()
        now = time.time()
        try:
            if held and now - float(held) < LEASE_S:
                return False
        except ValueError:
            pass  # a torn or foreign file: take it over
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{now:.3f}".encode(), 0)
        return True
    finally:
        os.close(fd)  # also releases the lock


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, that outgoing connections will not take, not handed out before here."""
    with _LOCK:
        for _ in range(1000):
            port = _RNG.randrange(_LOW, _HIGH)
            if port in _HANDED_OUT:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            _HANDED_OUT.add(port)
            if not _lease(port):
                continue
            return port
    raise RuntimeError(f"no free port in {_LOW}-{_HIGH} on {host}")
