"""Test servers get ports that outgoing connections cannot take and that are never handed out twice."""

from __future__ import annotations

import multiprocessing
import socket
from pathlib import Path

import pytest

from xds_server import ports
from xds_server.ports import _HIGH, free_port


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(p < _HIGH for p in ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))


def _hand_out(directory: str, count: int) -> list[int]:
    import os

    os.environ["MESHWORK_PORT_LEASES"] = directory
    return [ports.free_port() for _ in range(count)]


def test_processes_sharing_a_lease_directory_never_hand_out_the_same_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Same seed in every process: without the leases they would all draw the same ports.
    monkeypatch.setattr(ports, "_RNG", ports.random.Random(7))
    with multiprocessing.get_context("fork").Pool(3) as pool:
        drawn = pool.starmap(_hand_out, [(str(tmp_path), 150)] * 3)
    flat = [p for batch in drawn for p in batch]
    assert len(flat) == 450
    assert len(set(flat)) == len(flat)
    assert {int(f.name) for f in tmp_path.iterdir()} == set(flat)


def test_a_lease_older_than_the_lease_time_is_taken_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHWORK_PORT_LEASES", str(tmp_path))
    (tmp_path / "20001").write_text("1.0")  # handed out in 1970
    (tmp_path / "20002").write_text(f"{ports.time.time():.3f}")  # handed out just now by someone else
    assert ports._lease(20001)
    assert not ports._lease(20002)
    assert float((tmp_path / "20001").read_text()) > 1.0
