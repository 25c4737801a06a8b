"""The writers' shared loop (:func:`mesh_operator.kube.rounds.leader_rounds`): rounds only while leading, woken early,
surviving a failed round."""

from __future__ import annotations

import asyncio
import contextlib

from mesh_operator.kube.rounds import leader_rounds

#: far longer than any test waits: a round that runs came from ``wake``, not from the period
LONG = 3600.0


async def _stop(task: asyncio.Task[object]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_wake_runs_a_round_at_once_and_only_the_leader_runs_rounds() -> None:
    leading, rounds, followed = [False], [], []
    ran = asyncio.Event()

    async def round_() -> None:
        rounds.append(1)
        ran.set()

    wake = asyncio.Event()
    task = asyncio.ensure_future(
        leader_rounds(
            round_,
            period=LONG,
            is_leader=lambda: leading[0],
            on_error=lambda e: None,
            wake=wake,
            on_follower=lambda: followed.append(1),
        )
    )
    try:
        wake.set()
        for _ in range(100):  # bounded: the follower's turn comes within a few loop iterations
            if followed:
                break
            await asyncio.sleep(0.01)
        assert followed == [1] and rounds == [], "a follower runs no round"
        leading[0] = True
        wake.set()
        await asyncio.wait_for(ran.wait(), timeout=5)
        assert rounds == [1]
    finally:
        await _stop(task)


async def test_a_failed_round_is_reported_and_the_next_round_still_runs() -> None:
    errors: list[str] = []
    calls = []
    second = asyncio.Event()

    async def round_() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("apiserver went away")
        second.set()

    task = asyncio.ensure_future(
        leader_rounds(round_, period=0.01, is_leader=lambda: True, on_error=lambda e: errors.append(str(e)))
    )
    try:
        await asyncio.wait_for(second.wait(), timeout=5)
        assert errors == ["apiserver went away"]
    finally:
        await _stop(task)
