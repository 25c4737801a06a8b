"""The Gateway API in the operator: watch HTTPRoutes, GRPCRoutes and XMesh (when their CRDs are installed), hand the
routes to translation, and write their status the way the Gateway API specifies it.

* **Discovery first.** The CRDs are upstream's and optional: at start the operator asks the API server which of
  the kinds it serves and watches only those (a kopf watch of a resource that does not exist would stall the
  ready gate). Installing the CRDs later needs an operator restart.
* **Status.** ``status.parents[]`` holds one entry per (parent, controller). Only our entries (Service parents,
  ``controllerName: meshwork.io/mesh-controller``) are computed; every other controller's entry is written back as
  it was read, and the write carries the object's ``resourceVersion`` so a concurrent write by another controller
  is never lost (409: the next round re-reads). XMesh objects whose ``spec.controllerName`` is ours get
  ``Accepted`` and the sorted ``supportedFeatures``.
* Same writing discipline as the policy status writer: leader only, idempotent (no write when nothing a user can
  see changed), per-object rate-bounded.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from mesh_operator.api.gateway import CONTROLLER_NAME, GatewayRoute, GRPCRoute, HTTPRoute, XMesh
from mesh_operator.control.plane import ControlPlane
from mesh_operator.kube.errors import ApiError
from mesh_operator.kube.rest import Rest
from mesh_operator.kube.rounds import leader_rounds
from mesh_operator.kube.status import with_transition_times
from mesh_operator.translate.gateway import GatewayRouting, RouteOutcome
from mesh_operator.translate.gateway_status import route_status, xmesh_status
from mesh_operator.translate.state import MeshState
from mesh_operator.translate.status import PolicyKey
from mesh_operator.validation import validate_document

log = logging.getLogger(__name__)

#: kind -> (group, version, plural, namespaced)
GATEWAY_RESOURCES: dict[str, tuple[str, str, str, bool]] = {
    "HTTPRoute": ("gateway.networking.k8s.io", "v1", "httproutes", True),
    "GRPCRoute": ("gateway.networking.k8s.io", "v1", "grpcroutes", True),
    "XMesh": ("gateway.networking.x-k8s.io", "v1alpha1", "xmeshes", False),
}
_ECHO_WAIT = 5.0


def _key(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def _generation(body: Mapping[str, Any]) -> int:
    return int((body.get("metadata") or {}).get("generation") or 1)


def _clean(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    return {**{k: v for k, v in body.items() if k != "status"}, "metadata": meta}


async def discover(rest: Rest) -> tuple[str, ...]:
    """The Gateway API kinds the API server serves (their CRDs are installed) and we may list (RBAC): a watch
    that can never start would hold kopf's ready gate shut."""
    found = []
    for kind, (group, version, plural, _) in GATEWAY_RESOURCES.items():
        try:
            doc = await rest.get(f"/apis/{group}/{version}")
            if not any(r.get("name") == plural for r in (doc or {}).get("resources") or []):
                continue
            await rest.get(f"/apis/{group}/{version}/{plural}?limit=1")
        except ApiError as e:
            if e.status != 404:
                log.warning("not watching %s: %s", kind, e)
            continue
        found.append(kind)
    return tuple(found)


class GatewayStore:
    """The watched Gateway API objects, as last seen; routes parsed once per generation."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, Mapping[str, Any]]] = {k: {} for k in GATEWAY_RESOURCES}
        self._parsed: dict[tuple[str, str], tuple[int, HTTPRoute | GRPCRoute | XMesh | None]] = {}
        self.on_change = on_change
        self.kinds: tuple[str, ...] = ()

    def upsert(self, kind: str, body: Mapping[str, Any]) -> None:
        k = _key(body)
        with self._lock:
            previous = self._objects[kind].get(k)
            self._objects[kind][k] = body
            relevant = previous is None or _generation(previous) != _generation(body)
            if relevant:
                checked = validate_document(_clean(body))
                obj = checked.obj if isinstance(checked.obj, HTTPRoute | GRPCRoute | XMesh) else None
                if checked.violations:
                    log.warning("%s %s: %s", kind, k, "; ".join(str(v) for v in checked.violations))
                self._parsed[(kind, k)] = (_generation(body), obj)
        if relevant and self.on_change is not None:
            self.on_change()

    def delete(self, kind: str, body: Mapping[str, Any]) -> None:
        k = _key(body)
        with self._lock:
            gone = self._objects[kind].pop(k, None)
            self._parsed.pop((kind, k), None)
        if gone is not None and self.on_change is not None:
            self.on_change()

    def routes(self) -> tuple[GatewayRoute, ...]:
        with self._lock:
            parsed = sorted(self._parsed.items())
        return tuple(obj for _, (_, obj) in parsed if isinstance(obj, HTTPRoute | GRPCRoute))

    def bodies(self, kind: str) -> dict[str, Mapping[str, Any]]:
        with self._lock:
            return dict(self._objects[kind])

    def register(self, registry: kopf.OperatorRegistry, mark_synced: Callable[[], None]) -> None:
        """kopf index + event handlers for every discovered kind (same thin pattern as ``kube.handlers``)."""
        for kind in self.kinds:
            group, version, plural, _ = GATEWAY_RESOURCES[kind]
            self._register(registry, kind, f"{group}/{version}", plural, mark_synced)

    def _register(
        self, registry: kopf.OperatorRegistry, kind: str, gv: str, plural: str, mark_synced: Callable[[], None]
    ) -> None:
        async def index(body: kopf.Body, **_: Any) -> None:  # coroutines: no thread-pool hop per event
            self.upsert(kind, dict(body))

        async def event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
            mark_synced()
            if event["type"] == "DELETED":
                self.delete(kind, dict(body))

        kopf.index(gv, plural, id=f"meshwork-{plural}-index", registry=registry)(index)
        kopf.on.event(gv, plural, id=f"meshwork-{plural}-event", registry=registry)(event)


def route_receipt(plane: ControlPlane, ref: str) -> dict[str, Any]:
    """Delivery receipt of one route (``Kind/namespace/name``): the proxies whose config carries it, how many run
    that config, and which rejected it (Envoy's NACK text)."""
    status = plane.status
    nodes = sorted(n for n, refs in status.policies_by_node.items() if ref in refs)
    proxies = plane.sync.proxies()
    rejected: dict[str, str] = {}
    for node in nodes:
        p = proxies.get(node)
        for t in p.types.values() if p is not None else ():
            if t.rejecting:
                rejected[node] = t.rejecting.error
    applied = [
        n
        for n in nodes
        if n not in rejected
        and n not in status.failed
        and (p := proxies.get(n)) is not None
        and p.acked_version == status.desired.get(n)
    ]
    return {"proxies": len(nodes), "applied": len(applied), "rejected": rejected}


def _strip(status: Mapping[str, Any]) -> Any:
    """What a user sees, transition times aside."""
    out = dict(status)
    if "parents" in out:
        out["parents"] = [
            {
                **p,
                "conditions": [
                    {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in p.get("conditions") or []
                ],
            }
            for p in out["parents"]
        ]
    if "conditions" in out:
        out["conditions"] = [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in out["conditions"]]
    return out


def with_times(desired: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """``lastTransitionTime`` on every one of our conditions (the Gateway API requires it), kept from ``current``
    while a condition's status holds."""
    before = {
        _ref_id(p.get("parentRef") or {}): p
        for p in current.get("parents") or []
        if p.get("controllerName") == CONTROLLER_NAME
    }
    parents = []
    for p in desired.get("parents") or []:
        if p.get("controllerName") != CONTROLLER_NAME:
            parents.append(p)
            continue
        prev = before.get(_ref_id(p["parentRef"]), {})
        parents.append({**p, **with_transition_times(p, prev)})
    return {**desired, "parents": parents}


def _ref_id(ref: Mapping[str, Any]) -> tuple[object, ...]:
    return (ref.get("group"), ref.get("kind"), ref.get("namespace"), ref.get("name"), ref.get("port"))


class GatewayStatusWriter:
    def __init__(
        self,
        rest: Rest,
        store: GatewayStore,
        state: Callable[[], MeshState | None],
        plane: Callable[[], ControlPlane | None],
        *,
        is_leader: Callable[[], bool] = lambda: True,
        min_interval: float = 1.0,
        period: float = 0.5,
    ) -> None:
        self.rest, self.store, self._state, self._plane = rest, store, state, plane
        self.is_leader = is_leader
        self.min_interval, self.period = min_interval, period
        self._last_write: dict[tuple[str, str], float] = {}
        self._written: dict[tuple[str, str], tuple[float, Any]] = {}
        self._outcomes: tuple[MeshState, dict[PolicyKey, RouteOutcome]] | None = None
        self.writes = 0
        self.failures = 0

    async def run(self) -> None:
        await leader_rounds(
            self.sync_once,
            period=self.period,
            is_leader=self.is_leader,
            on_error=lambda _e: log.exception("gateway status round failed"),
        )

    async def sync_once(self) -> int:
        state = self._state()
        if state is None:
            return 0
        if self._outcomes is None or self._outcomes[0] is not state:  # once per translated state, not per round
            self._outcomes = (state, GatewayRouting(state).outcomes)
        outcomes = self._outcomes[1]
        plane = self._plane()
        jobs = []
        for kind in ("HTTPRoute", "GRPCRoute"):
            for k, body in self.store.bodies(kind).items():
                ns, _, name = k.partition("/")
                outcome = outcomes.get(PolicyKey(kind, ns, name))
                current = body.get("status") or {}
                if outcome is None or outcome.generation != _generation(body):
                    continue  # not parsed or not translated yet
                mine = [p for p in current.get("parents") or [] if p.get("controllerName") == CONTROLLER_NAME]
                if not outcome.parents and not mine:
                    continue  # no Service parent, and nothing of ours to take back
                receipt = route_receipt(plane, f"{kind}/{ns}/{name}") if plane is not None else None
                desired = route_status(outcome, ns, current, receipt)
                jobs.append(self._maybe_write(kind, k, body, desired))
        for k, body in self.store.bodies("XMesh").items():
            if (body.get("spec") or {}).get("controllerName") != CONTROLLER_NAME:
                continue
            current = body.get("status") or {}
            desired = {**current, **xmesh_status(_generation(body))}
            jobs.append(self._maybe_write("XMesh", k, body, desired))
        done = await asyncio.gather(*jobs)
        return sum(done)

    async def _maybe_write(self, kind: str, k: str, body: Mapping[str, Any], desired: dict[str, Any]) -> bool:
        current = body.get("status") or {}
        if _strip(desired) == _strip(current):
            return False
        written = self._written.get((kind, k))
        now = time.monotonic()
        if written is not None and now - written[0] < _ECHO_WAIT and _strip(written[1]) == _strip(desired):
            return False
        if now - self._last_write.get((kind, k), -1e9) < self.min_interval:
            return False
        self._last_write[(kind, k)] = now
        if kind == "XMesh":
            status = {**desired, **with_transition_times(desired, current)}
        else:
            status = with_times(desired, current)
        group, version, plural, namespaced = GATEWAY_RESOURCES[kind]
        ns, _, name = k.partition("/") if namespaced else ("", "", k)
        where = f"/namespaces/{ns}" if namespaced else ""
        path = f"/apis/{group}/{version}{where}/{plural}/{name}/status"
        rv = (body.get("metadata") or {}).get("resourceVersion")
        try:
            await self.rest.merge_patch(path, {"metadata": {"resourceVersion": rv}, "status": status})
        except ApiError as e:
            if e.status not in (404, 409):  # deleted meanwhile / someone else wrote first: next round re-reads
                self.failures += 1
                log.warning("status of %s %s not written: %s", kind, k, e)
            return False
        self.writes += 1
        self._written[(kind, k)] = (time.monotonic(), status)
        return True
