"""Pods that should have a sidecar and have none: created while the injection webhook was down (failurePolicy
Ignore lets them through) or before their namespace was labelled. Pure: stored Pod dicts in, findings out.

The decision is the webhook's own (:func:`mesh_operator.inject.pod.decide`), so a pod is reported exactly when the
webhook would have injected it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mesh_operator.inject.errors import InjectionError
from mesh_operator.inject.pod import decide, is_injected
from mesh_operator.inject.settings import InjectionSettings


@dataclass(frozen=True, slots=True)
class MissingSidecar:
    namespace: str
    name: str
    uid: str
    reason: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def missing_sidecars(
    pods: Iterable[Mapping[str, Any]],
    settings: InjectionSettings,
    namespace_labels: Callable[[str], Mapping[str, str] | None],
) -> list[MissingSidecar]:
    import dataclasses

    s = dataclasses.replace(settings, namespace_labels=namespace_labels)
    out = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if is_injected(pod):
            continue
        try:
            skipped = decide(dict(pod), s)
        except InjectionError:
            continue  # the webhook refuses such a pod; it cannot exist without a sidecar by its doing
        if skipped is not None:
            continue
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name"))
        reason = (
            f"pod {ns}/{name} should carry the Meshwork sidecar (namespace labelled meshwork.io/inject=enabled) "
            "but was admitted without it (the injection webhook was unreachable?); delete the pod to recreate it "
            "injected"
        )
        out.append(MissingSidecar(ns, name, str(meta.get("uid") or ""), reason))
    return sorted(out, key=lambda m: m.key)
