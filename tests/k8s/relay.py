"""A TCP relay in front of the test apiserver that can silently stall the connections it already carries.

``freeze()`` stops forwarding on every connection open at that moment, in both directions, and keeps their sockets
open: the peer sees no data, no FIN and no RST — what a dead NAT entry or a half-dead load balancer does to a long
watch. Connections opened after ``freeze()`` work normally. Only loopback is ever involved.
"""

from __future__ import annotations

import select
import socket
import threading
from pathlib import Path

import yaml


class StallingRelay:
    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._frozen: set[int] = set()
        self._open: dict[int, tuple[socket.socket, socket.socket]] = {}
        self._next = 0
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    def freeze(self) -> int:
        """Stall every connection open now; returns how many."""
        with self._lock:
            self._frozen |= set(self._open)
            return len(self._open)

    def open_connections(self) -> int:
        with self._lock:
            return len(self._open) - len(self._frozen & set(self._open))

    def kubeconfig(self, original: Path, target: Path) -> Path:
        """A copy of ``original`` whose server is this relay (the apiserver's certificate names 127.0.0.1)."""
        cfg = yaml.safe_load(original.read_text())
        for cluster in cfg["clusters"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{self.port}"
        target.write_text(yaml.safe_dump(cfg))
        return target

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            pairs = list(self._open.values())
            self._open.clear()
        for a, b in pairs:
            a.close()
            b.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                ident, self._next = self._next, self._next + 1
                self._open[ident] = (client, upstream)
            threading.Thread(target=self._pump, args=(ident, client, upstream), daemon=True).start()

    def _pump(self, ident: int, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while not self._closed.is_set():
                readable, _, _ = select.select([a, b], [], [], 0.2)
                with self._lock:  # checked after select: data that arrives after freeze() is never forwarded
                    frozen = ident in self._frozen
                if frozen:  # hold the sockets open, forward nothing, until the relay closes
                    self._closed.wait(1.0)
                    continue
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    peers[s].sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._open.pop(ident, None)
            a.close()
            b.close()
