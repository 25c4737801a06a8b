"""Options shared by every test tier."""

from __future__ import annotations

import os

import pytest

# Every test process (xdist workers, both `make test` lanes, the control planes they start) leases the ports it
# hands out in one directory, so no two processes hand out the same port (xds_server/ports.py).
os.environ.setdefault("MESHWORK_PORT_LEASES", "/tmp/meshwork-port-leases")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the expected output of golden tests instead of comparing against it",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))
