"""Story: the control plane runs two replicas and is upgraded with `helm upgrade` while traffic flows.

The session's release is upgraded to two replicas first (the chart's HA values: a PodDisruptionBudget, a rolling
update that never takes a replica away before its successor is Ready), then upgraded again with a changed value
that rolls both pods while the frontend calls the backend 10 times a second. Not one request may fail (Istio's own
upgrade test tolerates 15 % 503s; this one tolerates none), the load must still run when the rollout is over, and
afterwards every sidecar is SYNCED again on the new pods only. The story ends by upgrading the release back to the
session's values (one replica), so the stories after it see the release they expect.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.kit import (
    CHART,
    CP_SELECTOR,
    DEPLOYMENT,
    NS,
    RELEASE,
    Load,
    Mesh,
    Namespace,
    ca_bundles_set,
    deploy_example_app,
    failures,
    get_json,
    helm,
    rollout,
    values,
    wait,
    wait_synced_on,
    write_values,
)

#: at most N requests (the test stops the load once every sidecar is SYNCED on the new pods)
N, INTERVAL = 1500, 0.1


def _upgrade(mesh: Mesh, tmp: Path, *, wait: bool = True, **control_plane: object) -> None:
    path = write_values(tmp, values(mesh.images, **control_plane))
    until = ("--wait", "--timeout", "240s") if wait else ()
    done = helm(mesh.cluster, "upgrade", RELEASE, str(CHART), "-n", NS, "-f", str(path), *until)
    assert done.returncode == 0, done.stdout + done.stderr + mesh.logs()
    if wait:
        rollout(mesh.cluster, NS, DEPLOYMENT, timeout=240)


def _ready(mesh: Mesh) -> set[str]:
    return {
        str(p["metadata"]["name"])
        for p in mesh.control_plane_pods()
        if {c["type"]: c["status"] for c in p["status"].get("conditions") or []}.get("Ready") == "True"
    }


def _only(mesh: Mesh, count: int) -> set[str] | None:
    """The control-plane pods when exactly ``count`` exist, all Ready, none terminating."""
    every = {str(p["metadata"]["name"]) for p in get_json(mesh.cluster, "pods", "-n", NS, "-l", CP_SELECTOR)["items"]}
    ready = _ready(mesh)
    return ready if len(every) == count and ready == every else None


@pytest.fixture(scope="module")
def ha(mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, set[str]]]:
    """The release at two replicas and the example app in a namespace of its own, every sidecar SYNCED."""
    tmp = tmp_path_factory.mktemp("ha")
    _upgrade(mesh, tmp, wait=False, replicas=2)  # the second replica starts while the app is deployed
    # the upgrade keeps the webhooks' caBundle (an empty one in the chart overwrote it: the app's pods, created
    # next, were admitted without their sidecars)
    assert ca_bundles_set(mesh.cluster)
    ns = Namespace(mesh.cluster, "ha")
    try:
        deploy_example_app(mesh, ns.name)
        replicas = wait("two control-plane pods Ready", lambda: _only(mesh, 2), 120)
        wait_synced_on(mesh, ns.name, 4, replicas)
        yield ns.name, replicas
    finally:
        ns.delete()
        _upgrade(mesh, tmp)  # the session's values again: one replica
        wait("one control-plane pod again", lambda: _only(mesh, 1), 120)


def test_helm_upgrade_of_two_control_plane_replicas_under_load_fails_no_request_and_every_sidecar_resyncs(
    mesh: Mesh, ha: tuple[str, set[str]], tmp_path: Path
) -> None:
    c = mesh.cluster
    shop, old = ha
    pdb = get_json(c, "pdb", DEPLOYMENT, "-n", NS)
    assert pdb["spec"]["minAvailable"] == 1
    load = Load(c, shop, "deploy/frontend", "http://127.0.0.1:8080/call/anything", n=N, interval=INTERVAL)

    _upgrade(mesh, tmp_path, replicas=2, logLevel="debug")  # a changed setting: new checksum, both pods roll
    new = wait("two new control-plane pods Ready, the old ones gone", lambda: _only(mesh, 2), 120)
    assert not new & old, (new, old)
    config = get_json(c, "configmap", DEPLOYMENT, "-n", NS)["data"]["config.yaml"]
    assert "logLevel: debug" in config
    where = wait_synced_on(mesh, shop, 4, new)  # each sidecar reconnected to one of the new pods and ACKed
    assert set(where.values()) <= new
    load.stop()
    replies = load.result()
    # still running when stopped: the load covered the whole rollout and the sidecars' reconnection
    assert 0 < len(replies) < N, f"{len(replies)} of at most {N} requests: the load ended before the rollout did"
    assert failures(replies) == [], failures(replies)[:5]
