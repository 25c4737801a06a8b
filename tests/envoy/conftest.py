"""The envoy tier: real Envoy processes and real traffic on 127.0.0.1.

Every test in this folder gets the `envoy` marker. Without the Envoy binary the tier is skipped with the reason
shown, except in CI (`CI=true`), where it is required and the run fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from xds_server.envoy_binary import envoy_path
from xds_server.errors import EnvoyNotFound

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.envoy)


@pytest.fixture(scope="session")
def envoy_binary() -> Path:
    import os

    try:
        return envoy_path()
    except EnvoyNotFound as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the envoy tier is required in CI (CI=true) but Envoy is missing: {err}", pytrace=False)
        pytest.skip(f"envoy tier skipped: {err}")


@pytest.fixture(autouse=True)
def _require_envoy(envoy_binary: Path) -> None:
    return None


@pytest.fixture
async def upstream() -> AsyncIterator[int]:
    """A tiny HTTP server on 127.0.0.1 answering ``hello`` on every path; yields its port."""

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await runner.cleanup()
