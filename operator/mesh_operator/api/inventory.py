"""Inventory: the services and their instances, for running without Kubernetes (local mode).

In Kubernetes the same facts come from Services, EndpointSlices and Pods.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Literal

from pydantic import Field

from mesh_operator.api.common import DnsLabel, Model, ObjectMeta


class ServicePort(Model):
    name: DnsLabel = "http"
    port: int = Field(ge=1, le=65535, description="The port callers address.")
    protocol: Literal["HTTP", "HTTP2", "TCP"] = "HTTP"


class Upstream(Model):
    """A service this instance calls, and the local port its sidecar listens on for it."""

    service: str = Field(description="name or name.namespace")
    local_port: int = Field(ge=1, le=65535)
    port: str | None = Field(default=None, description="Service port name; defaults to the first port.")


class Sidecar(Model):
    mode: Literal["Explicit", "Transparent"] = Field(
        default="Explicit",
        description="Explicit: the app calls upstreams on local ports. Transparent: the pod's traffic is captured "
        "(iptables) and routed by destination ClusterIP:port and Host.",
    )
    inbound_port: int | None = Field(default=None, ge=1, le=65535, description="Where peers reach this instance.")
    admin_port: int | None = Field(default=None, ge=1, le=65535)
    upstreams: list[Upstream] = Field(default_factory=list)


class Locality(Model):
    region: str = ""
    zone: str = ""


class Instance(Model):
    name: DnsLabel = Field(description="The workload name; its proxy is NAMESPACE/NAME.")
    address: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535, description="Where the application listens.")
    labels: dict[str, str] = Field(default_factory=dict)
    locality: Locality = Field(default_factory=Locality)
    service_account: DnsLabel = "default"
    sidecar: Sidecar = Field(default_factory=Sidecar)
    command: list[str] = Field(default_factory=list, description="Local mode: the workload process to run.")


class Service(Model):
    name: DnsLabel
    namespace: DnsLabel = "default"
    ports: list[ServicePort] = Field(min_length=1)
    cluster_ip: IPv4Address | None = Field(
        default=None, alias="clusterIP", description="The Service's virtual IP (transparent mode)."
    )
    instances: list[Instance] = Field(default_factory=list)


class Client(Model):
    """A workload that calls services but serves none (e.g. a load generator)."""

    name: DnsLabel
    namespace: DnsLabel = "default"
    service_account: DnsLabel = "default"
    locality: Locality = Field(default_factory=Locality)
    sidecar: Sidecar = Field(default_factory=Sidecar)
    command: list[str] = Field(default_factory=list)


class InventorySpec(Model):
    services: list[Service] = Field(default_factory=list)
    clients: list[Client] = Field(default_factory=list)


class Inventory(Model):
    api_version: Literal["meshwork.io/v1alpha1"] = "meshwork.io/v1alpha1"
    kind: Literal["Inventory"] = "Inventory"
    metadata: ObjectMeta
    spec: InventorySpec
