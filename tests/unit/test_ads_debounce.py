"""The debouncer fires after a quiet period, but never later than max_delay after the first event."""

from __future__ import annotations

import asyncio
import time

import pytest

from xds_server.debounce import Debouncer

pytestmark = pytest.mark.timeout(10)


async def test_a_burst_of_events_gives_one_run_after_the_quiet_period():
    fired: list[float] = []

    async def cb() -> None:
        fired.append(time.monotonic())

    d = Debouncer(cb, delay=0.05, max_delay=1.0)
    start = time.monotonic()
    for _ in range(5):
        d.trigger()
        await asyncio.sleep(0.01)
    await d.wait_idle()
    assert len(fired) == 1
    assert fired[0] - start >= 0.05 + 0.04
    await d.aclose()


async def test_a_steady_stream_of_events_still_fires_by_max_delay():
    fired: list[float] = []

    async def cb() -> None:
        fired.append(time.monotonic())

    d = Debouncer(cb, delay=0.05, max_delay=0.2)
    start = time.monotonic()
    while time.monotonic() - start < 0.5:
        d.trigger()
        await asyncio.sleep(0.01)
    await d.wait_idle()
    assert fired[0] - start < 0.3
    assert len(fired) >= 2
    await d.aclose()


async def test_an_event_during_a_run_causes_exactly_one_more_run():
    runs = 0
    gate = asyncio.Event()

    async def cb() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            await gate.wait()

    d = Debouncer(cb, delay=0.01, max_delay=0.05)
    d.trigger()
    await asyncio.sleep(0.05)
    d.trigger()
    d.trigger()
    gate.set()
    await d.wait_idle()
    assert runs == 2
    await d.aclose()


async def test_a_failing_callback_does_not_stop_the_debouncer():
    calls = 0

    async def cb() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    d = Debouncer(cb, delay=0.01, max_delay=0.05)
    d.trigger()
    await d.wait_idle()
    d.trigger()
    await d.wait_idle()
    assert calls == 2
    await d.aclose()
