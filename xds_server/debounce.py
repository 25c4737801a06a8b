"""An async debouncer: run a callback ``delay`` after the last trigger, but no later than ``max_delay`` after the
first trigger of a burst. Triggers during a run cause exactly one more run after it. Runs never overlap."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Debouncer:
    def __init__(self, callback: Callable[[], Awaitable[None]], *, delay: float = 0.1, max_delay: float = 1.0) -> None:
        if delay < 0 or max_delay < delay:
            raise ValueError("need 0 <= delay <= max_delay")
        self._callback = callback
        self.delay = delay
        self.max_delay = max_delay
        self._first: float | None = None
        self._last = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.runs = 0

    def trigger(self) -> None:
        """Note an event. Cheap; call it from the event loop thread."""
        now = time.monotonic()
        if self._first is None:
            self._first = now
        self._last = now
        self._idle.clear()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def wait_idle(self) -> None:
        """Wait until every trigger so far has been followed by a completed run."""
        await self._idle.wait()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._idle.set()

    async def _run(self) -> None:
        while self._first is not None:
            deadline = min(self._last + self.delay, self._first + self.max_delay)
            left = deadline - time.monotonic()
            if left > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), left)
                except TimeoutError:
                    pass
                continue
            self._first = None
            try:
                await self._callback()
            except Exception:
                log.exception("debounced callback failed")
            self.runs += 1
        self._idle.set()
