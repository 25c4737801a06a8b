"""Story: scaling backend up and back down under a steady load changes where the sidecars send requests, with
zero failed requests. The backend Deployments are ordinary: a `preStop` sleep (the usual graceful-shutdown
practice) keeps a terminating pod serving while the endpoint change reaches the callers' sidecars."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.kit import Load, Mesh, Namespace, deploy_example_app, failures, pods, rollout, wait, wait_synced


@pytest.fixture(scope="module")
def shop(mesh: Mesh) -> Iterator[str]:
    ns = Namespace(mesh.cluster, "scale")
    deploy_example_app(mesh, ns.name)
    wait_synced(mesh, ns.name, 4)
    try:
        yield ns.name
    finally:
        ns.delete()


def test_scaling_backend_to_three_and_back_under_steady_load_fails_no_request(mesh: Mesh, shop: str) -> None:
    c = mesh.cluster
    load = Load(c, shop, "deploy/frontend", "http://backend:8080/anything", n=400, interval=0.1)
    c.kubectl("scale", "deployment/backend-v1", "-n", shop, "--replicas=3")
    rollout(c, shop, "backend-v1")
    wait("four backend pods serving", lambda: len(pods(c, shop, "app=backend")) == 4, 60)
    wait_synced(mesh, shop, 5)
    c.kubectl("scale", "deployment/backend-v1", "-n", shop, "--replicas=2")
    wait("three backend pods again", lambda: len(pods(c, shop, "app=backend")) == 3, 90)
    replies = load.result()
    assert len(replies) == 400
    assert failures(replies) == [], failures(replies)[:5]
    served = {r.served_by for r in replies}
    assert served == {"backend-v1", "backend-v2"}, served
