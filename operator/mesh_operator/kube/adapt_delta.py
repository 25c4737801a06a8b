"""The adapter, O(changed): the services and workloads of the cluster kept current from the keys of the core objects
that changed, re-deriving only what depends on them, with what :func:`mesh_operator.kube.adapter.adapt` (the
reference, whose functions this calls) gives for the same objects.

What depends on what:

- a **Service**'s :class:`ServiceInfo`: the Service, its EndpointSlices (by their service label: a slice that
  moves to another Service or loses its label changes both), the mesh Pods those slices refer to, their Nodes;
- a **Pod**'s :class:`WorkloadInfo` and problems: the Pod, its Node, and which ports of which Services it serves
  (a change of a Service it serves can change its inbound: the first Service by key wins a port, and an
  explicit-mode sidecar serves one Service, the others are problems);
- a **Node** change re-derives the pods on it and the services they serve; a **Mesh** change re-derives nothing
  (the adapter does not read it).

Changed values are layered on the previous maps (:class:`xds_server.layered.Layered`: only the changed keys in
the top layer, :data:`~xds_server.layered.GONE` for removed ones); unchanged values stay the very same objects,
so the translator reads the change off the layers. A value re-derived equal to the previous one is no change.
The first call (nothing known yet) derives everything, through the same code. Pure: no I/O, no Kubernetes
client; the caller serializes calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mesh_operator.kube.adapter import (
    AdaptProblem,
    ClusterObjects,
    MeshPod,
    Served,
    adapt_service,
    adapt_workload,
    mesh_pod,
    slice_pods,
    slice_service,
)
from mesh_operator.translate.state import ServiceInfo, WorkloadInfo
from xds_server.layered import GONE, Layered

#: kind -> the keys of the objects of that kind that changed (created, updated or deleted)
Changed = Mapping[str, Iterable[str]]


def _spec_node(pod: MeshPod) -> str:
    return str((pod.body.get("spec") or {}).get("nodeName") or "")


class DeltaAdapter:
    """The adapted cluster, and the indexes that tell what a change affects."""

    def __init__(self) -> None:
        self.services: Mapping[str, ServiceInfo] = {}
        self.workloads: Mapping[str, WorkloadInfo] = {}
        #: the Pods in the mesh
        self._pods: dict[str, MeshPod] = {}
        #: service key -> the pods that serve it (see adapter.Served)
        self._served: dict[str, tuple[Served, ...]] = {}
        #: pod key -> service key -> (port index, app port) of each of its ports the pod serves
        self._serving: dict[str, dict[str, list[tuple[int, int]]]] = {}
        #: EndpointSlice key -> its service's key; service key -> its slices' keys
        self._slice_service: dict[str, str] = {}
        self._slices: dict[str, set[str]] = {}
        #: EndpointSlice key -> the pods it refers to; pod key -> the slices that refer to it
        self._slice_pods: dict[str, frozenset[str]] = {}
        self._pod_slices: dict[str, set[str]] = {}
        #: node name -> the mesh pods on it
        self._node_pods: dict[str, set[str]] = {}
        #: pod key -> its problems (every problem the adapter reports is about a Pod)
        self._problems: dict[str, tuple[AdaptProblem, ...]] = {}
        self._problem_list: list[AdaptProblem] | None = []

    @classmethod
    def of(cls, objects: ClusterObjects) -> DeltaAdapter:
        """Every object adapted (``objects`` as the first change)."""
        out = cls()
        out.apply(
            objects,
            {
                "Service": objects.services,
                "EndpointSlice": objects.endpoint_slices,
                "Pod": objects.pods,
                "Node": (),
            },
        )
        return out

    def problems(self) -> list[AdaptProblem]:
        """What could not be used, by Pod key (the order :func:`adapt` reports them in)."""
        if self._problem_list is None:
            self._problem_list = [p for k in sorted(self._problems) for p in self._problems[k]]
        return list(self._problem_list)

    def apply(self, objects: ClusterObjects, changed: Changed) -> None:
        """Bring the adapted state up to ``objects`` (every object as it is now), of which those named in
        ``changed`` (kind -> keys: Service, EndpointSlice, Pod, Node) may differ from what was last applied."""
        services = set(changed.get("Service", ()))
        pods = set(changed.get("Pod", ()))
        for node in changed.get("Node", ()):
            pods |= self._node_pods.get(node, set())
        for k in changed.get("EndpointSlice", ()):
            services |= self._slice_changed(k, objects.endpoint_slices.get(k))
        for k in pods:
            self._pod_changed(k, objects.pods.get(k))
            services.update(self._slice_service[s] for s in self._pod_slices.get(k, ()) if s in self._slice_service)
        workloads = set(pods)
        service_changes: dict[str, Any] = {}
        for k in sorted(services):  # (sorted: a first call's maps are in adapt()'s order)
            workloads |= self._service_changed(k, objects, service_changes)
        workload_changes: dict[str, Any] = {}
        for k in sorted(workloads):
            self._workload_changed(k, objects, workload_changes)
        self.services = _layered(self.services, service_changes)
        self.workloads = _layered(self.workloads, workload_changes)

    # ----------------------------------------------------------------- indexes

    def _slice_changed(self, k: str, body: Any) -> set[str]:
        """Re-index one EndpointSlice: the services it belonged to and belongs to now."""
        out = set()
        old = self._slice_service.pop(k, None)
        if old is not None:
            out.add(old)
            _discard(self._slices, old, k)
        for p in self._slice_pods.pop(k, frozenset()):
            _discard(self._pod_slices, p, k)
        if body is None:
            return out
        svc = slice_service(body)
        if svc is not None:
            out.add(svc)
            self._slice_service[k] = svc
            self._slices.setdefault(svc, set()).add(k)
        refs = slice_pods(body)
        if refs:
            self._slice_pods[k] = refs
            for p in refs:
                self._pod_slices.setdefault(p, set()).add(k)
        return out

    def _pod_changed(self, k: str, body: Any) -> None:
        old = self._pods.pop(k, None)
        if old is not None:
            _discard(self._node_pods, _spec_node(old), k)
        new = mesh_pod(k, body) if body is not None else None
        if new is not None:
            self._pods[k] = new
            self._node_pods.setdefault(_spec_node(new), set()).add(k)

    # ----------------------------------------------------------------- values

    def _service_changed(self, k: str, objects: ClusterObjects, changes: dict[str, Any]) -> set[str]:
        """Re-derive one service; the pods whose serving of it changed."""
        body = objects.services.get(k)
        slices = [objects.endpoint_slices[s] for s in sorted(self._slices.get(k, ()))]
        adapted = adapt_service(body, slices, self._pods, objects.nodes) if body is not None else None
        info, served = adapted if adapted is not None else (None, ())
        _put(self.services, k, info, changes)
        old = self._served.pop(k, ())
        if served:
            self._served[k] = served
        if served == old:
            return set()
        touched = {pod for _, pod, _ in old} | {pod for _, pod, _ in served}
        for pod in touched:
            _discard_key(self._serving, pod, k)
        for n, pod, app_port in served:
            self._serving.setdefault(pod, {}).setdefault(k, []).append((n, app_port))
        return touched

    def _workload_changed(self, k: str, objects: ClusterObjects, changes: dict[str, Any]) -> None:
        mp = self._pods.get(k)
        workload: WorkloadInfo | None = None
        problems: list[AdaptProblem] = []
        if mp is not None:
            by_service = self._serving.get(k, {})
            serving = [(s, n, port) for s in sorted(by_service) for n, port in by_service[s]]
            workload, problems = adapt_workload(mp, serving, objects.nodes)
        _put(self.workloads, k, workload, changes)
        if tuple(problems) != self._problems.get(k, ()):
            self._problem_list = None
            if problems:
                self._problems[k] = tuple(problems)
            else:
                del self._problems[k]


def _layered(current: Mapping[str, Any], changes: dict[str, Any]) -> Mapping[str, Any]:
    """``current`` with ``changes`` on a layer; a plain dict when there was nothing (the first call: a layer on
    nothing would tell the next changes apart from the first call's)."""
    if not changes:
        return current
    if not current:
        return {k: v for k, v in changes.items() if v is not GONE}
    return Layered.over(current, changes)


def _put(current: Mapping[str, Any], k: str, value: Any, changes: dict[str, Any]) -> None:
    """Record ``value`` (None: gone) for ``k`` in ``changes`` if it differs from ``current``'s."""
    old = current.get(k)
    if value is None:
        if old is not None:
            changes[k] = GONE
    elif old is None or old != value:
        changes[k] = value


def _discard(index: dict[str, set[str]], k: str, member: str) -> None:
    members = index.get(k)
    if members is not None:
        members.discard(member)
        if not members:
            del index[k]


def _discard_key(index: dict[str, dict[str, Any]], k: str, member: str) -> None:
    members = index.get(k)
    if members is not None:
        members.pop(member, None)
        if not members:
            del index[k]
