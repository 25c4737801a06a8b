"""Rules a Mesh must follow beyond its schema."""

from __future__ import annotations

from mesh_operator.api.common import duration_ms
from mesh_operator.api.mesh import Mesh
from mesh_operator.validation.violations import Collector

MIN_WORKLOAD_TTL_MS = 10_000


def validate_mesh(mesh: Mesh, c: Collector) -> None:
    s = c.at("spec")
    certs = mesh.spec.certificates
    leaf, root = duration_ms(certs.workload_ttl), duration_ms(certs.root_ttl)
    if leaf < MIN_WORKLOAD_TTL_MS:
        s.at("certificates").error("workloadTtl", "must be at least 10s")
    if leaf * 2 > root:
        s.at("certificates").error("workloadTtl", "must be less than half of rootTtl")
    if mesh.spec.mtls.mode == "Permissive":
        s.at("mtls").warning("mode", "Permissive accepts plaintext from outside the mesh; use it only to migrate")
    seen: dict[tuple[str, str | None], int] = {}
    for i, egress in enumerate(mesh.spec.sidecar_egress):
        at = s.at("sidecarEgress", i)
        who = (egress.namespace, egress.service_account)
        if who in seen:
            what = f"namespace {who[0]}" + (f", serviceAccount {who[1]}" if who[1] else "")
            at.error(None, f"{what} is already selected by spec.sidecarEgress[{seen[who]}]: merge the two entries")
        else:
            seen[who] = i
        listed: set[str] = set()
        for k, service in enumerate(egress.services):
            if service in listed:
                at.at("services").warning(k, f"{service} is listed twice")
            listed.add(service)
