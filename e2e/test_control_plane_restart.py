"""Story: the control-plane pod is deleted while traffic flows. The sidecars keep their last config, so no
request fails; the Deployment starts a new pod, which loads the same CA from its Secret, and every sidecar
reconnects to it and is SYNCED again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.kit import NS, Load, Mesh, Namespace, deploy_example_app, failures, wait, wait_synced


@pytest.fixture(scope="module")
def shop(mesh: Mesh) -> Iterator[str]:
    ns = Namespace(mesh.cluster, "cp")
    deploy_example_app(mesh, ns.name)
    wait_synced(mesh, ns.name, 4)
    try:
        yield ns.name
    finally:
        ns.delete()


def test_deleting_the_control_plane_pod_under_load_fails_no_request_and_the_sidecars_reconnect(
    mesh: Mesh, shop: str
) -> None:
    c = mesh.cluster
    (old,) = [p["metadata"]["name"] for p in mesh.control_plane_pods()]
    load = Load(c, shop, "deploy/frontend", "http://127.0.0.1:8080/call/anything", n=300, interval=0.1)
    c.kubectl("delete", "pod", old, "-n", NS, "--wait=false")

    def new_ready() -> str | None:
        for p in mesh.control_plane_pods():
            ready = {x["type"]: x["status"] for x in p["status"].get("conditions") or []}
            if p["metadata"]["name"] != old and ready.get("Ready") == "True":
                return str(p["metadata"]["name"])
        return None

    new = wait("a new control-plane pod Ready", new_ready, 120, interval=1)
    wait(f"{old} gone", lambda: all(p["metadata"]["name"] != old for p in mesh.control_plane_pods()), 60)
    proxies = wait_synced(mesh, shop, 4, timeout=120)  # asked of the new pod: the sidecars reconnected to it
    assert len(proxies) == 4
    replies = load.result()
    assert len(replies) == 300
    assert failures(replies) == [], failures(replies)[:5]
    assert new != old
