"""The pod annotations the injector reads, parsed once into :class:`PodOptions`.

==========================================  ============================================================
``meshwork.io/inject``                      ``"true"`` injects (also outside labelled namespaces), ``"false"`` opts out
``meshwork.io/sidecar-mode``                ``native`` (default) or ``classic``
``meshwork.io/proxy-image``                 the sidecar image
``meshwork.io/init-image``                  the capture init container's image
``meshwork.io/proxy-cpu``                   CPU request of the sidecar (a Kubernetes quantity, e.g. ``100m``)
``meshwork.io/proxy-memory``                memory request of the sidecar (e.g. ``128Mi``)
``meshwork.io/proxy-cpu-limit``             CPU limit (``""``: none)
``meshwork.io/proxy-memory-limit``          memory limit (``""``: none)
``meshwork.io/proxy-log-level``             Envoy log level (trace, debug, info, warning, error, critical, off)
``meshwork.io/proxy-concurrency``           Envoy worker threads (1–64)
``meshwork.io/drain-seconds``               how long Envoy drains on SIGTERM (0–600)
``meshwork.io/rewrite-probes``              ``"false"`` leaves kubelet probes untouched
``meshwork.io/exclude-inbound-ports``       comma-separated ports whose inbound traffic is not captured
``meshwork.io/exclude-outbound-ports``      comma-separated destination ports not captured
``meshwork.io/exclude-inbound-cidrs``       comma-separated source CIDRs whose inbound traffic is not captured
``meshwork.io/exclude-outbound-cidrs``      comma-separated destination CIDRs not captured
==========================================  ============================================================

The injector writes ``meshwork.io/status`` (what it injected) on the pods it changes.
A bad value is an :class:`~mesh_operator.inject.errors.InjectionError` naming the annotation: the pod is
refused with that message rather than started with a sidecar nobody asked for.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from mesh_operator.inject.errors import InjectionError
from mesh_operator.inject.settings import InjectionSettings, Mode, Resources

PREFIX: Final = "meshwork.io/"
INJECT: Final = PREFIX + "inject"
STATUS: Final = PREFIX + "status"
SIDECAR_MODE: Final = PREFIX + "sidecar-mode"
PROXY_IMAGE: Final = PREFIX + "proxy-image"
INIT_IMAGE: Final = PREFIX + "init-image"
PROXY_CPU: Final = PREFIX + "proxy-cpu"
PROXY_MEMORY: Final = PREFIX + "proxy-memory"
PROXY_CPU_LIMIT: Final = PREFIX + "proxy-cpu-limit"
PROXY_MEMORY_LIMIT: Final = PREFIX + "proxy-memory-limit"
LOG_LEVEL: Final = PREFIX + "proxy-log-level"
CONCURRENCY: Final = PREFIX + "proxy-concurrency"
DRAIN_SECONDS: Final = PREFIX + "drain-seconds"
REWRITE_PROBES: Final = PREFIX + "rewrite-probes"
EXCLUDE_INBOUND_PORTS: Final = PREFIX + "exclude-inbound-ports"
EXCLUDE_OUTBOUND_PORTS: Final = PREFIX + "exclude-outbound-ports"
EXCLUDE_INBOUND_CIDRS: Final = PREFIX + "exclude-inbound-cidrs"
EXCLUDE_OUTBOUND_CIDRS: Final = PREFIX + "exclude-outbound-cidrs"

#: The namespace label that turns injection on for every pod of the namespace.
NAMESPACE_LABEL: Final = PREFIX + "inject"
NAMESPACE_ENABLED: Final = "enabled"

KNOWN: Final = frozenset(
    {
        INJECT,
        STATUS,
        SIDECAR_MODE,
        PROXY_IMAGE,
        INIT_IMAGE,
        PROXY_CPU,
        PROXY_MEMORY,
        PROXY_CPU_LIMIT,
        PROXY_MEMORY_LIMIT,
        LOG_LEVEL,
        CONCURRENCY,
        DRAIN_SECONDS,
        REWRITE_PROBES,
        EXCLUDE_INBOUND_PORTS,
        EXCLUDE_OUTBOUND_PORTS,
        EXCLUDE_INBOUND_CIDRS,
        EXCLUDE_OUTBOUND_CIDRS,
    }
)

_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")
_LOG_LEVELS: Final = ("trace", "debug", "info", "warning", "error", "critical", "off")


@dataclass(frozen=True, slots=True)
class PodOptions:
    """The settings in force for one pod: the mesh's, with its annotations applied."""

    mode: Mode
    proxy_image: str
    capture_image: str
    resources: Resources
    log_level: str
    concurrency: int
    drain_seconds: int
    rewrite_probes: bool
    exclude_inbound_ports: tuple[int, ...] = ()
    exclude_outbound_ports: tuple[int, ...] = ()
    exclude_inbound_cidrs: tuple[str, ...] = ()
    exclude_outbound_cidrs: tuple[str, ...] = ()


def _path(key: str) -> str:
    return f'metadata.annotations["{key}"]'


def _bool(key: str, value: str) -> bool:
    if value in ("true", "false"):
        return value == "true"
    raise InjectionError(_path(key), f'must be "true" or "false", not {value!r}')


def _int(key: str, value: str, lo: int, hi: int) -> int:
    if not value.isdigit() or not lo <= int(value) <= hi:
        raise InjectionError(_path(key), f"must be a whole number from {lo} to {hi}, not {value!r}")
    return int(value)


def _quantity(key: str, value: str, optional: bool = False) -> str | None:
    if optional and value == "":
        return None
    if not _QUANTITY.match(value):
        raise InjectionError(_path(key), f"must be a Kubernetes quantity such as 100m or 128Mi, not {value!r}")
    return value


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _ports(key: str, value: str) -> tuple[int, ...]:
    out = set()
    for item in _items(value):
        if not item.isdigit() or not 1 <= int(item) <= 65535:
            raise InjectionError(_path(key), f"{item!r} is not a port (1–65535)")
        out.add(int(item))
    return tuple(sorted(out))


def _cidrs(key: str, value: str) -> tuple[str, ...]:
    out = set()
    for item in _items(value):
        try:
            net = ipaddress.ip_network(item, strict=True)
        except ValueError as exc:
            raise InjectionError(_path(key), f"{item!r} is not a CIDR ({exc})") from None
        if net.version != 4:
            raise InjectionError(_path(key), f"{item!r}: only IPv4 is captured so far")
        out.add(net)
    return tuple(str(n) for n in sorted(out))


def _image(key: str, value: str) -> str:
    if not _IMAGE.match(value):
        raise InjectionError(_path(key), f"{value!r} is not an image reference")
    return value


def opt_in(annotations: Mapping[str, str]) -> bool | None:
    """``meshwork.io/inject`` as a tri-state: True, False, or None when absent."""
    value = annotations.get(INJECT)
    return None if value is None else _bool(INJECT, value)


def pod_options(annotations: Mapping[str, str], settings: InjectionSettings) -> PodOptions:
    """The settings for one pod. Raises :class:`InjectionError` on the first bad annotation value."""
    a = annotations
    unknown = sorted(k for k in a if k.startswith(PREFIX) and k not in KNOWN)
    if unknown:
        raise InjectionError(_path(unknown[0]), f"unknown annotation; known: {', '.join(sorted(KNOWN))}")
    mode = a.get(SIDECAR_MODE, settings.mode)
    if mode not in ("native", "classic"):
        raise InjectionError(_path(SIDECAR_MODE), f'must be "native" or "classic", not {mode!r}')
    res = settings.resources
    if PROXY_CPU in a:
        res = replace(res, cpu_request=_quantity(PROXY_CPU, a[PROXY_CPU]) or res.cpu_request)
    if PROXY_MEMORY in a:
        res = replace(res, memory_request=_quantity(PROXY_MEMORY, a[PROXY_MEMORY]) or res.memory_request)
    if PROXY_CPU_LIMIT in a:
        res = replace(res, cpu_limit=_quantity(PROXY_CPU_LIMIT, a[PROXY_CPU_LIMIT], optional=True))
    if PROXY_MEMORY_LIMIT in a:
        res = replace(res, memory_limit=_quantity(PROXY_MEMORY_LIMIT, a[PROXY_MEMORY_LIMIT], optional=True))
    log_level = a.get(LOG_LEVEL, settings.log_level)
    if log_level not in _LOG_LEVELS:
        raise InjectionError(_path(LOG_LEVEL), f"must be one of {', '.join(_LOG_LEVELS)}, not {log_level!r}")
    proxy_image = _image(PROXY_IMAGE, a[PROXY_IMAGE]) if PROXY_IMAGE in a else settings.proxy_image
    capture_image = _image(INIT_IMAGE, a[INIT_IMAGE]) if INIT_IMAGE in a else settings.init_image or proxy_image
    return PodOptions(
        mode="classic" if mode == "classic" else "native",
        proxy_image=proxy_image,
        capture_image=capture_image,
        resources=res,
        log_level=log_level,
        concurrency=_int(CONCURRENCY, a[CONCURRENCY], 1, 64) if CONCURRENCY in a else settings.concurrency,
        drain_seconds=_int(DRAIN_SECONDS, a[DRAIN_SECONDS], 0, 600) if DRAIN_SECONDS in a else settings.drain_seconds,
        rewrite_probes=_bool(REWRITE_PROBES, a[REWRITE_PROBES]) if REWRITE_PROBES in a else settings.rewrite_probes,
        exclude_inbound_ports=_ports(EXCLUDE_INBOUND_PORTS, a.get(EXCLUDE_INBOUND_PORTS, "")),
        exclude_outbound_ports=_ports(EXCLUDE_OUTBOUND_PORTS, a.get(EXCLUDE_OUTBOUND_PORTS, "")),
        exclude_inbound_cidrs=_cidrs(EXCLUDE_INBOUND_CIDRS, a.get(EXCLUDE_INBOUND_CIDRS, "")),
        exclude_outbound_cidrs=_cidrs(EXCLUDE_OUTBOUND_CIDRS, a.get(EXCLUDE_OUTBOUND_CIDRS, "")),
    )
