"""The periodic, leader-only loop of the control plane's writers (policy status, Gateway API route status, the
rate-limit service's ConfigMap): one round every ``period`` seconds, sooner when woken, only while this replica
holds the leader Lease, surviving any error of a round (the next round retries)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import NoReturn


async def leader_rounds(
    round_: Callable[[], Awaitable[object]],
    *,
    period: float,
    is_leader: Callable[[], bool],
    on_error: Callable[[Exception], None],
    wake: asyncio.Event | None = None,
    on_follower: Callable[[], None] | None = None,
) -> NoReturn:
    """Run ``round_`` forever: after ``period`` seconds or as soon as ``wake`` is set (then cleared), when
    ``is_leader()``; otherwise ``on_follower()``. ``on_error`` is called inside the ``except`` block, so it may use
    ``log.exception``. Cancellation ends the loop."""
    while True:
        if wake is None:
            await asyncio.sleep(period)
        else:
            try:
                await asyncio.wait_for(wake.wait(), timeout=period)
            except TimeoutError:
                pass
            wake.clear()
        if not is_leader():
            if on_follower is not None:
                on_follower()
            continue
        try:
            await round_()
        except Exception as e:  # the writer must survive anything; the next round retries
            on_error(e)
