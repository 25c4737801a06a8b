"""Offline rendering: the Envoy config one proxy would receive, without a running control plane.

Used by ``meshctl render`` and by the tests that run real Envoy in ``--mode validate`` on every golden case.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mesh_operator.errors import RenderError
from mesh_operator.translate import MeshState, translate_mesh
from xds_server import ir
from xds_server.ca import SpiffeId, TrustBundle, create_root
from xds_server.translate import render_bootstrap, to_proto_json, translate_proxy

__all__ = ["RenderError", "bootstrap", "proxy_config", "resources"]


def proxy_config(state: MeshState, node: str) -> ir.ProxyConfig:
    """The IR of one proxy. Raises :class:`RenderError` naming the known proxies when ``node`` is unknown."""
    if node.count("/") != 1:
        raise RenderError(f"--node must be NAMESPACE/WORKLOAD, got {node!r}")
    translated = translate_mesh(state, only={node})
    if node not in translated.proxies:
        known = ", ".join(sorted(state.workloads)) or "none"
        raise RenderError(f"unknown workload {node!r}; the inventory has: {known}")
    return translated.proxies[node]


def resources(state: MeshState, node: str) -> dict[str, Any]:
    """Every xDS resource of one proxy, as Envoy proto-JSON, grouped by type."""
    cfg = proxy_config(state, node)
    res = translate_proxy(cfg)
    return {
        "node": cfg.node.id,
        "identity": cfg.node.spiffe_id,
        "listeners": [to_proto_json(m) for m in res.listeners],
        "routes": [to_proto_json(m) for m in res.route_configs],
        "clusters": [to_proto_json(m) for m in res.clusters],
        "endpoints": [to_proto_json(m) for m in res.cluster_load_assignments],
        "secrets": [cfg.mesh.cert_secret, cfg.mesh.bundle_secret],
    }


def bootstrap(state: MeshState, node: str, *, certs_dir: str | Path | None = None) -> dict[str, Any]:
    """A complete static Envoy bootstrap for one proxy.

    With ``certs_dir`` the bootstrap points at ``cert.pem``, ``key.pem`` and ``ca.pem`` there. Without it, an
    ephemeral CA issues the proxy's certificate so the result is self-contained (for validation and inspection;
    a live mesh gets its certificates over SDS instead).
    """
    cfg = proxy_config(state, node)
    res = translate_proxy(cfg)
    if certs_dir is not None:
        d = Path(certs_dir)
        missing = [n for n in ("cert.pem", "key.pem", "ca.pem") if not (d / n).is_file()]
        if missing:
            raise RenderError(f"--certs {d}: missing {', '.join(missing)}")
        return render_bootstrap(
            cfg,
            res,
            cert_chain_path=str(d / "cert.pem"),
            private_key_path=str(d / "key.pem"),
            trust_bundle_path=str(d / "ca.pem"),
        )
    ca = create_root(cfg.mesh.trust_domain)
    leaf = ca.issue_keypair(SpiffeId.parse(cfg.node.spiffe_id))
    return render_bootstrap(
        cfg,
        res,
        cert_chain_pem=leaf.chain_pem.decode(),
        private_key_pem=leaf.private_key_pem.decode(),
        trust_bundle_pem=TrustBundle.of(ca.root).to_pem().decode(),
    )
