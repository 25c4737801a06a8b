"""Writes every policy's status: idempotent, coalesced and rate-bounded per object.

Every ``period`` the writer computes the desired status of each policy (from the last translation's outcomes and
the delivery receipts) and compares it with what the object carries (as the watch last saw it) and with what it
wrote last: equal means no write. A policy's status is written at most once per ``min_interval``; changes in
between are coalesced into the next write, so a thousand proxies ACKing one after another cost a policy at most
one write per interval, not one per ACK. Writes run on the control plane's loop, ``concurrency`` at a time. Only
the replica holding the leader Lease writes (``is_leader``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from mesh_operator.api import API_GROUP, API_VERSION
from mesh_operator.kube.errors import ApiError
from mesh_operator.kube.rest import Rest
from mesh_operator.kube.rounds import leader_rounds
from mesh_operator.kube.status import policy_status, unchanged, with_transition_times
from mesh_operator.kube.store import PolicyRecord
from mesh_operator.translate import PolicyKey, PolicyOutcome

log = logging.getLogger(__name__)

#: how long an own write may take to come back through the watch before it is written again
_ECHO_WAIT = 5.0
#: ... and how long while the watch's copy is provably older than the write (its resourceVersion is below the one
#: the PATCH answered with): on a loaded machine the echo can take longer than ``_ECHO_WAIT``, and writing the
#: same status again only adds to the apiserver's queue. A copy as new as the write but with another status (a
#: foreign write) is corrected after ``_ECHO_WAIT`` as before.
_ECHO_LIMIT = 60.0


class StatusWriter:
    def __init__(
        self,
        rest: Rest,
        records: Callable[[], Mapping[PolicyKey, PolicyRecord]],
        outcomes: Callable[[], Mapping[PolicyKey, PolicyOutcome]],
        receipts: Callable[[], Mapping[str, Mapping[str, Any]]],
        *,
        is_leader: Callable[[], bool] = lambda: True,
        min_interval: float = 1.0,
        period: float = 0.25,
        concurrency: int = 16,
        echo_wait: float = _ECHO_WAIT,
    ) -> None:
        self.rest = rest
        self._records, self._outcomes, self._receipts = records, outcomes, receipts
        self.is_leader = is_leader
        self.min_interval = min_interval
        self.period = period
        self._sem = asyncio.Semaphore(concurrency)
        self.echo_wait = echo_wait
        self._last_write: dict[PolicyKey, float] = {}
        #: key -> (when, the status written, the resourceVersion the PATCH answered with or None)
        self._written: dict[PolicyKey, tuple[float, dict[str, Any], int | None]] = {}
        self._wake = asyncio.Event()
        #: successful status writes, ever; failed ones
        self.writes = 0
        self.failures = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        await leader_rounds(
            self.sync_once,
            period=self.period,
            is_leader=self.is_leader,
            wake=self._wake,
            on_error=lambda _e: log.exception("status round failed"),
        )

    async def sync_once(self) -> int:
        """One round: write what changed and is due. Returns the number of writes attempted."""
        records = self._records()
        outcomes = self._outcomes()
        receipts = self._receipts()
        now = time.monotonic()
        for gone in set(self._last_write) - set(records):
            self._last_write.pop(gone, None)
            self._written.pop(gone, None)
        jobs = []
        for key, rec in records.items():
            outcome = outcomes.get(key)
            if outcome is None and not rec.violations:
                continue  # not translated yet
            if outcome is not None and outcome.generation != rec.generation:
                continue  # a newer generation is on its way through translation
            desired = policy_status(
                outcome, receipts.get(str(key)), generation=rec.generation, schema_violations=rec.violations
            )
            if unchanged(desired, rec.status):
                continue
            written = self._written.get(key)
            if written is not None and unchanged(desired, written[1]):
                age = now - written[0]
                echo_pending = (
                    written[2] is not None and rec.resource_version is not None and rec.resource_version < written[2]
                )
                if age < self.echo_wait or (echo_pending and age < _ECHO_LIMIT):
                    continue
            if now - self._last_write.get(key, -1e9) < self.min_interval:
                continue  # coalesced into a later round
            self._last_write[key] = now
            jobs.append(self._write(rec, with_transition_times(desired, rec.status)))
        if jobs:
            await asyncio.gather(*jobs)
        return len(jobs)

    async def _write(self, rec: PolicyRecord, status: dict[str, Any]) -> None:
        key = rec.key
        path = f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{key.namespace}/{rec.plural}/{key.name}/status"
        async with self._sem:
            try:
                answer = await self.rest.merge_patch(path, {"status": status})
            except ApiError as e:
                if e.status != 404:  # 404: deleted meanwhile
                    self.failures += 1
                    log.warning("status of %s not written (retried after %.1f s): %s", key, self.min_interval, e)
                return
        self.writes += 1
        self._written[key] = (time.monotonic(), status, _answered_version(answer))


def _answered_version(answer: Any) -> int | None:
    """The resourceVersion of the object a PATCH returned (None when it is not a number)."""
    try:
        return int(answer["metadata"]["resourceVersion"])
    except (TypeError, KeyError, ValueError):
        return None
