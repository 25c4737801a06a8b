"""Test servers get ports that outgoing connections cannot take and that are never handed out twice."""

from __future__ import annotations

import socket

from xds_server.ports import _HIGH, free_port


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(p < _HIGH for p in ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))
