"""Rules a local Inventory must follow beyond its schema."""

from __future__ import annotations

from collections import Counter

from mesh_operator.api.inventory import Inventory, Service, Sidecar
from mesh_operator.validation.violations import Collector


def validate_inventory(inv: Inventory, c: Collector) -> None:
    s = c.at("spec")
    services = {(svc.namespace, svc.name): svc for svc in inv.spec.services}
    for key, n in Counter((svc.namespace, svc.name) for svc in inv.spec.services).items():
        if n > 1:
            s.error("services", f"service {key[0]}/{key[1]} is declared {n} times")
    workloads: Counter[tuple[str, str]] = Counter()
    for i, svc in enumerate(inv.spec.services):
        sc = s.at("services", i)
        for name, n in Counter(p.name for p in svc.ports).items():
            if n > 1:
                sc.error("ports", f"port name {name!r} is used {n} times")
        for j, inst in enumerate(svc.instances):
            workloads[(svc.namespace, inst.name)] += 1
            _validate_sidecar(inst.sidecar, svc.namespace, services, sc.at("instances", j, "sidecar"))
    for i, client in enumerate(inv.spec.clients):
        workloads[(client.namespace, client.name)] += 1
        _validate_sidecar(client.sidecar, client.namespace, services, s.at("clients", i, "sidecar"))
    for (ns, name), n in workloads.items():
        if n > 1:
            s.error("services", f"workload {ns}/{name} is declared {n} times; workload names are unique per namespace")


def _validate_sidecar(sidecar: Sidecar, namespace: str, services: dict[tuple[str, str], Service], c: Collector) -> None:
    for k, up in enumerate(sidecar.upstreams):
        name, _, ns = up.service.partition(".")
        key = (ns or namespace, name)
        if key not in services:
            c.at("upstreams", k).error("service", f"unknown service {key[0]}/{key[1]}")
            continue
        svc = services[key]
        ports = [p.name for p in svc.ports]
        if up.port is not None and up.port not in ports:
            c.at("upstreams", k).error("port", f"service {key[0]}/{key[1]} has no port {up.port!r}")
    for port, n in Counter(u.local_port for u in sidecar.upstreams).items():
        if n > 1:
            c.error("upstreams", f"local port {port} is used {n} times")
