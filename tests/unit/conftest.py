"""Fixtures shared by the ADS protocol tests: a ready cache, a sync tracker, an in-memory channel to the server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from grpclib.testing import ChannelFor

from xds_server.ads import AdsServer
from xds_server.ads_transport import XdsCodec
from xds_server.cache import SnapshotCache
from xds_server.sync import SyncTracker


@pytest.fixture
def cache() -> SnapshotCache:
    return SnapshotCache(ready=True)


@pytest.fixture
def sync() -> SyncTracker:
    return SyncTracker()


@pytest.fixture
async def channel(cache: SnapshotCache, sync: SyncTracker) -> AsyncIterator[ChannelFor]:
    async with ChannelFor([AdsServer(cache, sync)], codec=XdsCodec()) as ch:
        yield ch
