"""Free TCP ports for local listeners (test servers, local-mode sidecar admin ports), outside the ephemeral range.

Asking the kernel for port 0 and releasing it is racy in a different way than it looks: the port comes from the
ephemeral range, which is also where every outgoing connection (Envoy to its xDS server, to its upstreams) gets
its source port. Seconds later, when the test's server binds the port, an outgoing connection may hold it. Ports
below the ephemeral range are never handed out that way, and a process-wide set keeps this process from handing
out one port twice.
"""

from __future__ import annotations

import random
import socket
import threading
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
            return port
    raise RuntimeError(f"no free port in {_LOW}-{_HIGH} on {host}")
