"""Offline injection of manifests (``meshctl inject -f``): the same :func:`inject_pod` as the webhook, applied
to Pods and to the pod templates of workloads, in multi-document YAML. Other documents pass through unchanged.

As ``istioctl kube-inject`` does, offline injection does not need the namespace label: the user asked for it by
running the command. ``meshwork.io/inject: "false"``, the never-injected namespaces, hostNetwork and
already-injected pods are still skipped (and reported).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from mesh_operator.inject import annotations as ann
from mesh_operator.inject.errors import InjectionError
from mesh_operator.inject.pod import Injected, inject_pod
from mesh_operator.inject.settings import InjectionSettings

#: kind -> the path of its pod template.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "PodTemplate": ("template",),
}


def _enabled(namespace: str) -> dict[str, str]:
    return {ann.NAMESPACE_LABEL: ann.NAMESPACE_ENABLED}


def _name(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    ns = meta.get("namespace") or "default"
    return f"{doc.get('kind')} {ns}/{meta.get('name') or meta.get('generateName') or '?'}"


def inject_object(doc: Any, settings: InjectionSettings, where: str = "") -> tuple[Any, list[str]]:
    """One document -> (the document, possibly injected; messages)."""
    if not isinstance(doc, dict):
        return doc, []
    kind = doc.get("kind")
    if kind == "List":
        items, messages = [], []
        for i, item in enumerate(doc.get("items") or []):
            new, msgs = inject_object(item, settings, f"{where}items[{i}].")
            items.append(new)
            messages += msgs
        return {**doc, "items": items}, messages
    namespace = (doc.get("metadata") or {}).get("namespace") or "default"
    if kind == "Pod":
        path: tuple[str, ...] = ()
    elif kind in TEMPLATES:
        path = TEMPLATES[kind]
    else:
        return doc, []
    pod: Any = doc
    for key in path:
        pod = pod.get(key) if isinstance(pod, dict) else None
    if not isinstance(pod, dict):
        raise InjectionError(where + ".".join(path), f"{_name(doc)} has no pod template")
    try:
        result = inject_pod(pod, settings, namespace)
    except InjectionError as exc:
        prefix = where + "".join(p + "." for p in path)
        raise InjectionError(prefix + exc.path, f"{_name(doc)}: {exc.message}") from None
    if not isinstance(result, Injected):
        return doc, [f"{_name(doc)}: not injected: {result.reason}"]
    messages = [f"{_name(doc)}: {w}" for w in result.warnings]
    if not path:
        return result.pod, messages
    out = dict(doc)
    parent = out
    for key in path[:-1]:
        parent[key] = dict(parent[key])
        parent = parent[key]
    parent[path[-1]] = result.pod
    return out, messages


def inject_documents(text: str, settings: InjectionSettings) -> tuple[str, list[str]]:
    """Multi-document YAML in, multi-document YAML out, plus what was skipped or warned about.

    Raises :class:`InjectionError` (path prefixed with the document's index) on a bad annotation or a malformed
    workload, and ``yaml.YAMLError`` on unreadable YAML.
    """
    settings = dataclasses.replace(settings, namespace_labels=_enabled)
    out: list[Any] = []
    messages: list[str] = []
    for i, doc in enumerate(yaml.safe_load_all(text)):
        if doc is None:
            continue
        try:
            new, msgs = inject_object(doc, settings)
        except InjectionError as exc:
            raise InjectionError(f"document {i}: {exc.path}", exc.message) from None
        out.append(new)
        messages += msgs
    return yaml.safe_dump_all(out, sort_keys=False, width=120), messages
