"""Injectable time: every function that reads the clock takes ``now`` (or a `Clock`) so tests are deterministic."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "resolve_now", "system_clock"]

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def resolve_now(now: datetime | None, clock: Clock = system_clock) -> datetime:
    """``now`` if given, else the clock's time; always timezone-aware UTC, truncated to whole seconds.

    X.509 times have a resolution of one second; truncating here keeps "what we asked for" equal to "what the
    certificate says", which makes the clamping rules exact.
    """
    value = clock() if now is None else now
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("times must be timezone-aware (use datetime.now(UTC))")
    return value.astimezone(UTC).replace(microsecond=0)
