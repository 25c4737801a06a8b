"""The policy status writer against a recording REST fake (a protocol boundary): an own write whose echo is still
on its way through the watch is not written again; a copy as new as the write that says otherwise is corrected."""

from __future__ import annotations

import asyncio
from typing import Any

from mesh_operator.kube.store import PolicyRecord
from mesh_operator.kube.writer import StatusWriter
from mesh_operator.translate import PolicyKey, PolicyOutcome

KEY = PolicyKey("TrafficPolicy", "shop", "a")


class Recorder:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.patches: list[tuple[str, Any]] = []

    async def merge_patch(self, path: str, body: Any) -> Any:
        self.patches.append((path, body))
        return self.answer


def writer_with(rest: Recorder, record: list[PolicyRecord]) -> StatusWriter:
    return StatusWriter(
        rest,  # type: ignore[arg-type]
        lambda: {KEY: record[0]},
        lambda: {KEY: PolicyOutcome(1)},
        lambda: {},
        min_interval=0.0,
        echo_wait=0.0,
    )


def test_a_status_whose_echo_is_older_than_the_write_is_not_written_again_until_a_newer_copy_disagrees() -> None:
    async def scenario() -> None:
        rest = Recorder({"metadata": {"resourceVersion": "10"}})
        record = [PolicyRecord(KEY, "trafficpolicies", 1, {}, resource_version=5)]
        writer = writer_with(rest, record)
        assert await writer.sync_once() == 1
        path, body = rest.patches[0]
        assert path == "/apis/meshwork.io/v1alpha1/namespaces/shop/trafficpolicies/a/status"
        assert body["status"]["observedGeneration"] == 1
        assert await writer.sync_once() == 0  # the watch still shows resourceVersion 5: the echo is on its way
        record[0] = PolicyRecord(KEY, "trafficpolicies", 1, {"conditions": []}, resource_version=11)
        assert await writer.sync_once() == 1  # a newer copy with another status: written again
        record[0] = PolicyRecord(KEY, "trafficpolicies", 1, rest.patches[-1][1]["status"], resource_version=12)
        assert await writer.sync_once() == 0  # the echo came back: nothing to do

    asyncio.run(scenario())


def test_without_a_resource_version_in_the_answer_the_echo_wait_alone_decides() -> None:
    async def scenario() -> None:
        rest = Recorder(None)
        writer = writer_with(rest, [PolicyRecord(KEY, "trafficpolicies", 1, {}, resource_version=5)])
        assert await writer.sync_once() == 1
        assert await writer.sync_once() == 1  # echo_wait 0: the unconfirmed write is repeated

    asyncio.run(scenario())
