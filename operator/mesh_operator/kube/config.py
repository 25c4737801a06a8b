"""The control plane's settings file in a cluster (``MESHWORK_CONFIG``, the chart's ConfigMap ``config.yaml``).

Pure: YAML text in, :class:`ClusterConfig` out, or a :class:`ConfigError` naming the field path. The chart renders
this file from its values (``charts/meshwork/templates/configmap.yaml``); every key is optional here, with the
chart's defaults, so that a hand-written file can be short.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from mesh_operator.control.certs import CONTROL_PLANE_SA
from mesh_operator.inject.settings import InjectionSettings, Resources


class ConfigError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


@dataclass(frozen=True)
class ClusterConfig:
    namespace: str = "meshwork-system"
    service: str = "meshwork-control-plane"
    trust_domain: str = "cluster.local"
    log_level: str = "info"
    xds_port: int = 15012
    webhook_port: int = 9443
    metrics_port: int = 15014
    health_port: int = 15021
    identity_port: int = 15017
    lease_name: str = "meshwork-control-plane"
    lease_duration: float = 15.0
    validating_configuration: str = ""
    mutating_configuration: str = ""
    ca_secret: str = "meshwork-ca"
    ca_external: bool = False
    injection: InjectionSettings = field(default_factory=InjectionSettings)

    @property
    def service_host(self) -> str:
        return f"{self.service}.{self.namespace}.svc"

    @property
    def webhook_names(self) -> tuple[str, ...]:
        return (self.service_host, f"{self.service}.{self.namespace}", f"{self.service_host}.cluster.local")


def _section(data: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}{key}", f"must be a mapping, not {type(value).__name__}")
    return value


def _port(data: Mapping[str, Any], key: str, default: int, path: str) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError(f"{path}{key}", f"{value!r} is not a port (1-65535)")
    return value


def _str(data: Mapping[str, Any], key: str, default: str, path: str) -> str:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ConfigError(f"{path}{key}", f"must be a string, not {type(value).__name__}")
    return value


def _number(data: Mapping[str, Any], key: str, default: float, path: str) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{path}{key}", f"{value!r} is not a positive number")
    return float(value)


def parse(text: str, *, namespace: str | None = None) -> ClusterConfig:
    """The settings of ``text``; ``namespace`` (the pod's own) wins over ``leaderElection.namespace``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError("<file>", f"not YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError("<file>", "must be a mapping")
    ports = _section(data, "ports", "")
    lease = _section(data, "leaderElection", "")
    hooks = _section(data, "webhooks", "")
    ca = _section(data, "ca", "")
    proxy = _section(data, "proxy", "")
    ns = namespace or _str(lease, "namespace", "meshwork-system", "leaderElection.")
    service = _str(hooks, "service", "meshwork-control-plane", "webhooks.")
    trust_domain = _str(data, "trustDomain", "cluster.local", "")
    identity_port = _port(ports, "identity", 15017, "ports.")
    xds_port = _port(ports, "xds", 15012, "ports.")
    host = f"{service}.{ns}.svc"
    injection = _injection(proxy, trust_domain, ns, host, xds_port, identity_port)
    return ClusterConfig(
        namespace=ns,
        service=service,
        trust_domain=trust_domain,
        log_level=_str(data, "logLevel", "info", ""),
        xds_port=xds_port,
        webhook_port=_port(ports, "webhook", 9443, "ports."),
        metrics_port=_port(ports, "metrics", 15014, "ports."),
        health_port=_port(ports, "health", 15021, "ports."),
        identity_port=identity_port,
        lease_name=_str(lease, "leaseName", "meshwork-control-plane", "leaderElection."),
        lease_duration=_number(lease, "leaseDurationSeconds", 15.0, "leaderElection."),
        validating_configuration=_str(hooks, "validatingConfiguration", "", "webhooks."),
        mutating_configuration=_str(hooks, "mutatingConfiguration", "", "webhooks."),
        ca_secret=_str(ca, "secret", "meshwork-ca", "ca."),
        ca_external=bool(ca.get("external", False)),
        injection=injection,
    )


def _injection(
    proxy: Mapping[str, Any], trust_domain: str, ns: str, host: str, xds_port: int, identity_port: int
) -> InjectionSettings:
    base = InjectionSettings()
    default_resources = Resources()
    ports = _section(proxy, "ports", "proxy.")
    resources = _section(proxy, "resources", "proxy.")
    requests = _section(resources, "requests", "proxy.resources.")
    limits = _section(resources, "limits", "proxy.resources.")
    native = proxy.get("nativeSidecar", True)
    if not isinstance(native, bool):
        raise ConfigError("proxy.nativeSidecar", f"{native!r} is not true or false")
    uid = proxy.get("uid", base.proxy_uid)
    if isinstance(uid, bool) or not isinstance(uid, int) or uid <= 0:
        raise ConfigError("proxy.uid", f"{uid!r} is not a user id above 0")
    concurrency = proxy.get("concurrency", base.concurrency)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError("proxy.concurrency", f"{concurrency!r} is not a whole number of at least 1")
    return InjectionSettings(
        proxy_image=_str(proxy, "image", base.proxy_image, "proxy."),
        image_pull_policy=_str(proxy, "imagePullPolicy", base.image_pull_policy, "proxy."),
        mode="native" if native else "classic",
        resources=Resources(
            cpu_request=str(requests.get("cpu", default_resources.cpu_request)),
            memory_request=str(requests.get("memory", default_resources.memory_request)),
            cpu_limit=str(limits["cpu"]) if limits.get("cpu") else None,
            memory_limit=str(limits["memory"]) if limits.get("memory") else None,
        ),
        log_level=_str(proxy, "logLevel", base.log_level, "proxy."),
        concurrency=concurrency,
        proxy_uid=uid,
        inbound_port=_port(ports, "inbound", base.inbound_port, "proxy.ports."),
        outbound_port=_port(ports, "outbound", base.outbound_port, "proxy.ports."),
        admin_port=_port(ports, "admin", base.admin_port, "proxy.ports."),
        health_port=_port(ports, "health", base.health_port, "proxy.ports."),
        control_plane=f"{host}:{xds_port}",
        identity_url=f"https://{host}:{identity_port}/identity/v1/certificate",
        # The identity the xDS and identity servers present (mesh_operator.control.certs.CONTROL_PLANE_SA).
        control_plane_id=f"spiffe://{trust_domain}/ns/{CONTROL_PLANE_SA[0]}/sa/{CONTROL_PLANE_SA[1]}",
        trust_domain=trust_domain,
        mesh_namespace=ns,
    )
