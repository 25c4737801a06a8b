"""The kopf handlers: thin, they only feed the :class:`~mesh_operator.kube.store.Store`.

The handlers are coroutines (kopf awaits them in its own loop, no thread-pool hop) and never block on I/O: the
store's lock is only held for dictionary updates and the validation of a new policy generation.

Nothing is ever written to the watched objects: no cause handlers (on.create/update/delete store progress in
annotations), only ``kopf.index`` and ``kopf.on.event``. The index handlers upsert into the store; kopf runs them
for every object of the initial LIST before it runs any ``on.event`` handler of any kind, so the first
``on.event`` call anywhere means every watched kind has been listed: that opens the store's ready gate (and so the
control plane's). Deletions reach the store through ``on.event`` (kopf drops deleted objects from indexes without
calling the index handler).
"""

from __future__ import annotations

from typing import Any

import kopf

from mesh_operator.api import API_GROUP, API_VERSION, CRD_KINDS
from mesh_operator.crdgen import plural as plural_of
from mesh_operator.kube.rest import Connection
from mesh_operator.kube.store import Store

#: kind -> (group, version, plural)
RESOURCES: dict[str, tuple[str, str, str]] = {
    "Service": ("", "v1", "services"),
    "EndpointSlice": ("discovery.k8s.io", "v1", "endpointslices"),
    "Pod": ("", "v1", "pods"),
    "Node": ("", "v1", "nodes"),
    "Namespace": ("", "v1", "namespaces"),
    **{kind: (API_GROUP, API_VERSION, plural_of(kind)) for kind in CRD_KINDS},
}


def build_registry(store: Store, conn: Connection) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(
            server=conn.server,
            ca_path=conn.ca_path,
            insecure=not conn.verify,
            certificate_path=conn.cert_path,
            private_key_path=conn.key_path,
            token=conn.token,
            default_namespace=conn.namespace,
        )

    for kind, (group, version, plural) in RESOURCES.items():
        _register(registry, store, kind, group, version, plural)
    return registry


def _register(registry: kopf.OperatorRegistry, store: Store, kind: str, group: str, version: str, plural: str) -> None:
    # Coroutines, so kopf calls them in its own loop: a plain function would cost two thread-pool hops per watch
    # event (and the GIL hand-overs of each), and every status write the operator makes comes back as an event.
    async def index(body: kopf.Body, **_: Any) -> None:
        store.upsert(kind, dict(body))

    async def event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        store.mark_synced()
        if event["type"] == "DELETED":
            store.delete(kind, dict(body))

    ident = f"meshwork-{plural}"
    what = (f"{group}/{version}", plural) if group else (version, plural)  # core: "v1", "pods"
    kopf.index(*what, id=f"{ident}-index", registry=registry)(index)
    kopf.on.event(*what, id=f"{ident}-event", registry=registry)(event)
