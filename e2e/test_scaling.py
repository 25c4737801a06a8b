"""Story: scaling backend up and back down under a steady load changes where the sidecars send requests, with
zero failed requests. The backend Deployments are ordinary: a `preStop` sleep (the usual graceful-shutdown
practice) keeps a terminating pod serving while the endpoint change reaches the callers' sidecars.

Each answer names the pod that served it (examples/apps/echo.py's ``x-served-by-pod``), so the story shows the pod
scaled up really served, and the pod scaled down stopped receiving requests within its preStop window, i.e. before
its app began to shut down, while the others kept serving."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from e2e.kit import (
    Load,
    Mesh,
    Namespace,
    deploy_example_app,
    failures,
    get_json,
    pods,
    rollout,
    wait,
    wait_synced,
)

#: the backend's preStop sleep (e2e/kit.py `deployment`), and the API server's one-second timestamp resolution
PRE_STOP, RESOLUTION = 3.0, 1.0


@pytest.fixture(scope="module")
def shop(mesh: Mesh) -> Iterator[str]:
    ns = Namespace(mesh.cluster, "scale")
    deploy_example_app(mesh, ns.name)
    wait_synced(mesh, ns.name, 4)
    try:
        yield ns.name
    finally:
        ns.delete()


def _names(items: list[dict[str, Any]]) -> set[str]:
    return {str(p["metadata"]["name"]) for p in items}


def test_scaling_backend_to_three_and_back_under_steady_load_fails_no_request(mesh: Mesh, shop: str) -> None:
    c = mesh.cluster
    before = _names(pods(c, shop, "app=backend,version=v1"))
    assert len(before) == 2
    load = Load(c, shop, "deploy/frontend", "http://backend:8080/anything", n=400, interval=0.1)
    c.kubectl("scale", "deployment/backend-v1", "-n", shop, "--replicas=3")
    rollout(c, shop, "backend-v1")
    wait("four backend pods serving", lambda: len(pods(c, shop, "app=backend")) == 4, 60)
    wait_synced(mesh, shop, 5)
    scaled_up = _names(pods(c, shop, "app=backend,version=v1")) - before
    assert len(scaled_up) == 1, scaled_up
    # the steady load (10/s over four backends) reaches the new pod for a few seconds before the scale-down
    time.sleep(4)

    c.kubectl("scale", "deployment/backend-v1", "-n", shop, "--replicas=2")

    def terminating() -> dict[str, Any] | None:
        items = get_json(c, "pods", "-n", shop, "-l", "app=backend,version=v1")["items"]
        going: list[dict[str, Any]] = [p for p in items if p["metadata"].get("deletionTimestamp")]
        return going[0] if going else None

    removed = wait("a backend-v1 pod terminating", terminating, 30, interval=0.3)
    meta = removed["metadata"]
    name = str(meta["name"])
    # deletionTimestamp is when the grace period ends: the deletion was asked that many seconds before it
    asked = datetime.fromisoformat(meta["deletionTimestamp"]).timestamp() - float(meta["deletionGracePeriodSeconds"])
    wait(f"{name} gone", lambda: name not in _names(get_json(c, "pods", "-n", shop, "-l", "app=backend")["items"]), 90)
    gone = time.time()
    wait("three backend pods again", lambda: len(pods(c, shop, "app=backend")) == 3, 30)

    replies = load.result()
    assert len(replies) == 400
    assert failures(replies) == [], failures(replies)[:5]
    assert {r.served_by for r in replies} == {"backend-v1", "backend-v2"}
    served = {r.pod for r in replies}
    assert scaled_up <= served, f"the scaled-up pod {scaled_up} served none of the requests (served: {served})"
    last = max(r.sent for r in replies if r.pod == name) if name in served else None
    assert last is None or last < asked + RESOLUTION + PRE_STOP, (
        f"{name} still received a request sent {last - asked:.1f}s after its deletion was asked (preStop {PRE_STOP}s)"
    )
    after = [r for r in replies if r.sent > gone]
    assert after, "the load ended before the scaled-down pod was gone: it does not show the others kept serving"
    assert {r.pod for r in after} <= _names(pods(c, shop, "app=backend")), {r.pod for r in after}
