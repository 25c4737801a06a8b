"""The labels the injection webhook decides on, for a namespace the operator's watch has not delivered yet: read from
the real kube-apiserver by the admission worker thread, on the operator's loop (kube/namespaces.py).

The race it closes (a namespace and its first pod created in one go, the webhook called before the Namespace watch
event arrives: the pod was admitted without its sidecar) showed in the Gateway API conformance suite on the real
cluster; here the store is held empty so the lookup path runs every time.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from kubernetes import client

from mesh_operator.kube.namespaces import NamespaceLabels
from mesh_operator.kube.rest import Rest, connection
from mesh_operator.testing import TestControlPlane


@pytest.fixture
def operator_loop(k8s_control_plane: TestControlPlane) -> Iterator[tuple[asyncio.AbstractEventLoop, Rest]]:
    """An event loop in its own thread (the operator's) and a Rest client of the test apiserver on it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    rest = Rest(connection(str(k8s_control_plane.kubeconfig_path)))
    try:
        yield loop, rest
    finally:
        asyncio.run_coroutine_threadsafe(rest.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def unknown(name: str) -> Mapping[str, str] | None:
    return None  # the store has not seen the namespace yet


def test_a_namespace_the_store_does_not_know_yet_is_read_from_the_api_with_its_labels(
    operator_loop: tuple[asyncio.AbstractEventLoop, Rest], k8s_api_client: client.ApiClient
) -> None:
    loop, rest = operator_loop
    core = client.CoreV1Api(k8s_api_client)
    ns = f"fresh-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns, "labels": {"meshwork.io/inject": "enabled"}}})
    try:
        labels = NamespaceLabels(unknown, rest.get, loop)
        assert labels(ns)["meshwork.io/inject"] == "enabled"  # called from this (non-loop) thread, as admission does
        known = NamespaceLabels(lambda n: {"from": "store"}, rest.get, loop)
        assert known(ns) == {"from": "store"}  # the store's answer wins, no API call
    finally:
        core.delete_namespace(ns)


def test_a_namespace_that_does_not_exist_is_unknown_within_the_bound_and_the_loop_is_never_blocked_on_itself(
    operator_loop: tuple[asyncio.AbstractEventLoop, Rest],
) -> None:
    loop, rest = operator_loop
    labels = NamespaceLabels(unknown, rest.get, loop, timeout=2.0)
    assert labels(f"missing-{uuid.uuid4().hex[:8]}") is None  # a 404: decided as before (not injected)

    async def on_the_loop() -> Any:
        return labels("anything")  # would deadlock if it waited for its own loop

    assert asyncio.run_coroutine_threadsafe(on_the_loop(), loop).result(5) is None
