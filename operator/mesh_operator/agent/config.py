"""The agent's settings, from the environment the injector writes (mesh_operator.inject.pod)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class AgentConfig:
    pod_name: str
    namespace: str
    service_account: str
    control_plane: str  # host:port of xDS
    identity_url: str
    token_path: Path
    ca_path: Path
    work_dir: Path
    trust_domain: str = "cluster.local"
    control_plane_id: str = "spiffe://cluster.local/ns/meshwork-system/sa/meshwork-control-plane"
    admin_port: int = 15000
    health_port: int = 15020
    log_level: str = "warning"
    concurrency: int = 2
    drain_seconds: int = 5
    envoy: str = "envoy"
    app_probes: dict[str, Any] = field(default_factory=dict)

    @property
    def node_id(self) -> str:
        return f"{self.namespace}/{self.pod_name}"

    @property
    def spiffe_id(self) -> str:
        return f"spiffe://{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    @property
    def creds_dir(self) -> Path:
        return self.work_dir / "creds"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AgentConfig:
        e = os.environ if env is None else env

        def need(name: str) -> str:
            value = e.get(name, "")
            if not value:
                raise ConfigError(f"{name} is not set")
            return value

        def number(name: str, default: int) -> int:
            value = e.get(name, str(default))
            if not value.isdigit():
                raise ConfigError(f"{name}={value!r} is not a whole number")
            return int(value)

        try:
            probes = json.loads(e.get("MESHWORK_APP_PROBES", "") or "{}")
        except ValueError as err:
            raise ConfigError(f"MESHWORK_APP_PROBES is not JSON: {err}") from None
        if not isinstance(probes, dict):
            raise ConfigError("MESHWORK_APP_PROBES must be a JSON object")
        return cls(
            pod_name=need("POD_NAME"),
            namespace=need("POD_NAMESPACE"),
            service_account=e.get("SERVICE_ACCOUNT") or "default",
            control_plane=need("MESHWORK_CONTROL_PLANE"),
            identity_url=need("MESHWORK_IDENTITY_URL"),
            token_path=Path(need("MESHWORK_TOKEN")),
            ca_path=Path(need("MESHWORK_CA")),
            work_dir=Path(need("MESHWORK_WORK_DIR")),
            trust_domain=(td := e.get("MESHWORK_TRUST_DOMAIN") or "cluster.local"),
            control_plane_id=e.get("MESHWORK_CONTROL_PLANE_ID")
            or f"spiffe://{td}/ns/meshwork-system/sa/meshwork-control-plane",
            admin_port=number("MESHWORK_ADMIN_PORT", 15000),
            health_port=number("MESHWORK_HEALTH_PORT", 15020),
            log_level=e.get("MESHWORK_LOG_LEVEL") or "warning",
            concurrency=number("MESHWORK_CONCURRENCY", 2),
            drain_seconds=number("MESHWORK_DRAIN_SECONDS", 5),
            envoy=e.get("MESHWORK_ENVOY") or "envoy",
            app_probes=probes,
        )
