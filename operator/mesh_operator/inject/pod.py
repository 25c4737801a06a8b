"""Injection, pure: a pod (a plain dict, as the API server sends it) -> the injected pod, or why it is skipped.

What an injected pod gets:

* ``meshwork-init``: an init container (root, ``NET_ADMIN`` + ``NET_RAW`` only, everything else dropped) that
  installs the capture rules of :mod:`mesh_operator.inject.capture` and exits.
* ``meshwork-proxy``: Envoy and the agent, as the proxy UID. By default a **native sidecar** (an init container
  with ``restartPolicy: Always``, right after ``meshwork-init``): it starts before the app's init containers and
  containers, its startup probe holds them until Envoy is ready, it stops after them, and a Job's pod completes.
  ``meshwork.io/sidecar-mode: classic`` makes it the first of ``containers`` instead, with a ``postStart`` hook
  that waits for Envoy (kubelet starts the next container only when the hook returns); the capture init container
  then runs *last* among the init containers, so the app's own init containers still reach the network.
* Volumes: the projected ServiceAccount token (audience ``meshwork``, mounted only into the proxy), an
  in-memory work directory, and the mesh's trust bundle (ConfigMap).
* The app's HTTP/TCP/gRPC probes rewritten to the agent's health port (:mod:`mesh_operator.inject.probes`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mesh_operator.inject import annotations as ann
from mesh_operator.inject import probes
from mesh_operator.inject.capture import CaptureSpec
from mesh_operator.inject.errors import InjectionError
from mesh_operator.inject.settings import (
    CA_DIR,
    CA_VOLUME,
    INIT_CONTAINER,
    PROXY_CONTAINER,
    TOKEN_DIR,
    TOKEN_VOLUME,
    WORK_DIR,
    WORK_VOLUME,
    InjectionSettings,
)

AGENT = ["python3", "-m", "mesh_operator.agent"]
CAPTURE = ["python3", "-m", "mesh_operator.inject.capture"]
READY_PATH = "/healthz/ready"


@dataclass(frozen=True, slots=True)
class Injected:
    pod: dict[str, Any]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: str
    #: True when someone asked for injection and did not get it (the admission response then warns).
    notable: bool = False


def _mapping(obj: Any, path: str) -> dict[str, Any]:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise InjectionError(path, f"must be an object, not {type(obj).__name__}")
    return obj


def _containers(spec: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = spec.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
        raise InjectionError(f"spec.{key}", "must be a list of containers")
    return value


def _string_map(obj: Any, path: str) -> dict[str, str]:
    m = _mapping(obj, path)
    for k, v in m.items():
        if not isinstance(v, str):
            raise InjectionError(f'{path}["{k}"]', f"must be a string, not {type(v).__name__}")
    return m


def is_injected(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    lists = (spec.get("initContainers") or [], spec.get("containers") or [])
    names = {c.get("name") for items in lists for c in items if isinstance(c, dict)}
    return PROXY_CONTAINER in names or INIT_CONTAINER in names


def decide(pod: dict[str, Any], settings: InjectionSettings, namespace: str | None = None) -> Skipped | None:
    """Why this pod is not injected, or None when it is to be."""
    meta = _mapping(pod.get("metadata"), "metadata")
    ns = namespace or meta.get("namespace") or "default"
    annotations = _string_map(meta.get("annotations"), "metadata.annotations")
    if ns in settings.never_inject or ns == settings.mesh_namespace:
        return Skipped(f"namespace {ns} is never injected")
    wanted = ann.opt_in(annotations)
    if wanted is False:
        return Skipped(f'{ann.INJECT} is "false"')
    labels = settings.namespace_labels(ns) or {}
    if wanted is None and labels.get(ann.NAMESPACE_LABEL) != ann.NAMESPACE_ENABLED:
        return Skipped(f"neither the namespace label {ann.NAMESPACE_LABEL}=enabled nor the annotation {ann.INJECT}")
    if is_injected(pod) or ann.STATUS in annotations:
        return Skipped("already injected")
    if _mapping(pod.get("spec"), "spec").get("hostNetwork") is True:
        return Skipped("hostNetwork: the pod shares the node's network; capturing it would capture the node", True)
    return None


def inject_pod(pod: dict[str, Any], settings: InjectionSettings, namespace: str | None = None) -> Injected | Skipped:
    """The injected copy of ``pod`` (never modified), or the reason it is left alone.

    Raises :class:`InjectionError` (with the field path) for a bad ``meshwork.io/*`` annotation or a malformed pod.
    """
    skipped = decide(pod, settings, namespace)
    if skipped is not None:
        return skipped
    out = copy.deepcopy(pod)
    meta = out.setdefault("metadata", {})
    annotations = meta.setdefault("annotations", {})
    opts = ann.pod_options(annotations, settings)
    spec = out.setdefault("spec", {})
    containers = _containers(spec, "containers")
    inits = _containers(spec, "initContainers")
    if not containers:
        raise InjectionError("spec.containers", "a pod needs at least one container")

    warnings: list[str] = []
    table: dict[str, Any] = {}
    if opts.rewrite_probes:
        containers, table, warnings = probes.rewrite(containers, settings.health_port)
        # The app's own native sidecars are probed by kubelet too (other init containers have no probes).
        inits, more, more_warnings = probes.rewrite(
            inits, settings.health_port, "spec.initContainers", select=lambda c: c.get("restartPolicy") == "Always"
        )
        table.update(more)
        warnings += more_warnings

    capture = CaptureSpec(
        proxy_uid=settings.proxy_uid,
        proxy_gid=settings.proxy_uid,
        inbound_port=settings.inbound_port,
        outbound_port=settings.outbound_port,
        proxy_ports=(settings.admin_port, settings.health_port),
        exclude_inbound_ports=opts.exclude_inbound_ports,
        exclude_outbound_ports=opts.exclude_outbound_ports,
        exclude_inbound_cidrs=opts.exclude_inbound_cidrs,
        exclude_outbound_cidrs=opts.exclude_outbound_cidrs,
    )
    init = _init_container(opts.capture_image, settings, capture)
    proxy = _proxy_container(opts, settings, table)
    if opts.mode == "native":
        spec["initContainers"] = [init, proxy, *inits]
        spec["containers"] = containers
    else:
        spec["initContainers"] = [*inits, init]
        spec["containers"] = [proxy, *containers]
    volumes = spec.get("volumes")
    if volumes is not None and not isinstance(volumes, list):
        raise InjectionError("spec.volumes", "must be a list of volumes")
    spec["volumes"] = [*(volumes or []), *_volumes(settings)]
    # A projected token needs the account named (the API server's ServiceAccount admission would name "default";
    # offline injection and API servers without that plugin do not).
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")

    annotations[ann.STATUS] = json.dumps(
        {"mode": opts.mode, "proxy": opts.proxy_image, "probes": sorted(table)}, separators=(",", ":")
    )
    annotations.setdefault("kubectl.kubernetes.io/default-container", str(containers[0].get("name", "")))
    return Injected(out, tuple(warnings))


def _init_container(image: str, settings: InjectionSettings, capture: CaptureSpec) -> dict[str, Any]:
    return {
        "name": INIT_CONTAINER,
        "image": image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": [*CAPTURE, *capture.args()],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
        "securityContext": {
            "runAsUser": 0,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
        },
    }


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _proxy_container(opts: ann.PodOptions, settings: InjectionSettings, table: dict[str, Any]) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        _field_env("POD_NAME", "metadata.name"),
        _field_env("POD_NAMESPACE", "metadata.namespace"),
        _field_env("POD_UID", "metadata.uid"),
        _field_env("POD_IP", "status.podIP"),
        _field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        {"name": "MESHWORK_CONTROL_PLANE", "value": settings.control_plane},
        {"name": "MESHWORK_IDENTITY_URL", "value": settings.identity_url},
        {"name": "MESHWORK_CONTROL_PLANE_ID", "value": settings.control_plane_id},
        {"name": "MESHWORK_TRUST_DOMAIN", "value": settings.trust_domain},
        {"name": "MESHWORK_TOKEN", "value": f"{TOKEN_DIR}/token"},
        {"name": "MESHWORK_CA", "value": f"{CA_DIR}/ca.pem"},
        {"name": "MESHWORK_WORK_DIR", "value": WORK_DIR},
        {"name": "MESHWORK_ADMIN_PORT", "value": str(settings.admin_port)},
        {"name": "MESHWORK_HEALTH_PORT", "value": str(settings.health_port)},
        {"name": "MESHWORK_INBOUND_PORT", "value": str(settings.inbound_port)},
        {"name": "MESHWORK_OUTBOUND_PORT", "value": str(settings.outbound_port)},
        {"name": "MESHWORK_LOG_LEVEL", "value": opts.log_level},
        {"name": "MESHWORK_CONCURRENCY", "value": str(opts.concurrency)},
        {"name": "MESHWORK_DRAIN_SECONDS", "value": str(opts.drain_seconds)},
    ]
    if table:
        env.append({"name": probes.PROBES_ENV, "value": probes.probes_env(table)})
    ready = {"httpGet": {"path": READY_PATH, "port": settings.health_port, "scheme": "HTTP"}}
    c: dict[str, Any] = {
        "name": PROXY_CONTAINER,
        "image": opts.proxy_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": [*AGENT, "run"],
        "env": env,
        "ports": [{"name": "mw-health", "containerPort": settings.health_port, "protocol": "TCP"}],
        "readinessProbe": {**ready, "periodSeconds": 5, "failureThreshold": 3},
        "resources": opts.resources.as_k8s(),
        "securityContext": {
            "runAsUser": settings.proxy_uid,
            "runAsGroup": settings.proxy_uid,
            "runAsNonRoot": True,
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
            {"name": WORK_VOLUME, "mountPath": WORK_DIR},
            {"name": CA_VOLUME, "mountPath": CA_DIR, "readOnly": True},
        ],
    }
    if opts.mode == "native":
        c["restartPolicy"] = "Always"
        # Kubelet starts the next init container (and then the app) only once this succeeds.
        c["startupProbe"] = {**ready, "periodSeconds": 1, "failureThreshold": 600}
    else:
        c["lifecycle"] = {"postStart": {"exec": {"command": [*AGENT, "wait", "--timeout", "600"]}}}
    return c


def _volumes(settings: InjectionSettings) -> list[dict[str, Any]]:
    return [
        {
            "name": TOKEN_VOLUME,
            "projected": {
                # Readable by the proxy's UID whatever the app's runAsUser/fsGroup; only the proxy mounts it.
                "defaultMode": 0o444,
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": settings.token_audience,
                            "expirationSeconds": settings.token_expiration_seconds,
                            "path": "token",
                        }
                    }
                ],
            },
        },
        {"name": WORK_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        {"name": CA_VOLUME, "configMap": {"name": settings.ca_configmap, "optional": True}},
    ]
