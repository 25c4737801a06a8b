"""Leader election over a Lease: one holder at a time, takeover only after the Lease went unrenewed for its
duration (by the taker's own clock), a holder that cannot renew stops leading first. The API is a fake at the
REST boundary with the apiserver's optimistic-concurrency rule (a PUT with a stale resourceVersion is a 409)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mesh_operator.kube import lease as lease_mod
from mesh_operator.kube.errors import ApiError
from mesh_operator.kube.lease import LeaderLease


class FakeApi:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.rv = 0
        self.down = False

    def _check(self, method: str, path: str) -> None:
        if self.down:
            raise ApiError(method, path, 0, "connection refused")

    async def get(self, path: str) -> Any:
        self._check("GET", path)
        if path not in self.objects:
            raise ApiError("GET", path, 404, "not found")
        return copy.deepcopy(self.objects[path])

    async def create(self, path: str, body: Any) -> Any:
        self._check("POST", path)
        full = f"{path}/{body['metadata']['name']}"
        if full in self.objects:
            raise ApiError("POST", path, 409, "exists")
        return self._store(full, body)

    async def replace(self, path: str, body: Any) -> Any:
        self._check("PUT", path)
        if self.objects[path]["metadata"]["resourceVersion"] != body["metadata"].get("resourceVersion"):
            raise ApiError("PUT", path, 409, "conflict")
        return self._store(path, body)

    def _store(self, path: str, body: Any) -> Any:
        self.rv += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[path] = body
        return copy.deepcopy(body)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(lease_mod.time, "monotonic", lambda: now[0])
    return now


async def test_one_leader_and_takeover_only_after_the_lease_duration(clock: list[float]) -> None:
    api = FakeApi()
    a = LeaderLease(api, "ns", "l", "a", duration=10, renew=2)  # type: ignore[arg-type]
    b = LeaderLease(api, "ns", "l", "b", duration=10, renew=2)  # type: ignore[arg-type]
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    assert a.is_leader() and not b.is_leader()
    for _ in range(5):  # a renews: b never takes over
        clock[0] += 2
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
    # a dies. b takes over once it has seen the Lease unchanged for the whole duration.
    clock[0] += 9
    assert not await b.try_acquire_or_renew()
    clock[0] += 2
    assert await b.try_acquire_or_renew()
    assert b.is_leader()
    assert b.transitions == 1


async def test_a_leader_that_cannot_renew_stops_leading_before_anyone_may_take_over(clock: list[float]) -> None:
    api = FakeApi()
    a = LeaderLease(api, "ns", "l", "a", duration=9, renew=2)  # type: ignore[arg-type]
    assert await a.try_acquire_or_renew()
    api.down = True
    clock[0] += 5.9
    assert a.is_leader()
    clock[0] += 0.2  # past 2/3 of the duration without a renewal
    assert not a.is_leader()


async def test_a_released_lease_is_taken_at_once(clock: list[float]) -> None:
    api = FakeApi()
    a = LeaderLease(api, "ns", "l", "a", duration=10, renew=2)  # type: ignore[arg-type]
    b = LeaderLease(api, "ns", "l", "b", duration=10, renew=2)  # type: ignore[arg-type]
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    await a.release()
    assert not a.is_leader()
    assert await b.try_acquire_or_renew()


async def test_a_replica_ack_table_renewed_long_ago_is_ignored_at_first_sight(clock: list[float]) -> None:
    from mesh_operator.kube.lease import micro_time
    from mesh_operator.kube.peers import ROLE_LABEL, AckPublisher, encode

    api = FakeApi()
    base = "/apis/coordination.k8s.io/v1/namespaces/ns/leases"

    async def listing(path: str) -> Any:
        return {"items": [copy.deepcopy(o) for p, o in api.objects.items() if p.startswith(base)]}

    def table(name: str, renewed: str) -> None:
        api._store(f"{base}/{name}", {
            "metadata": {"name": name, "labels": {ROLE_LABEL: "acks"},
                         "annotations": {"meshwork.io/acks": encode({f"ns/{name}": [{"Cluster": "v1"}, None]})}},
            "spec": {"renewTime": renewed},
        })  # fmt: skip

    table("dead", "2020-01-01T00:00:00.000000Z")
    table("alive", micro_time())
    pub = AckPublisher(api, "ns", "me", plane=None, duration=10)  # type: ignore[arg-type]
    api.get = listing  # type: ignore[method-assign]
    await pub.refresh()
    assert sorted(pub.remote_acks()) == ["ns/alive"]
    clock[0] += 11  # the live one stops renewing: gone after the duration by our clock
    await pub.refresh()
    assert pub.remote_acks() == {}
