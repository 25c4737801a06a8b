"""Local mode: the control plane fed by YAML files, with Envoy sidecars and workloads as local processes."""

from mesh_operator.local.runner import LocalMesh, run

__all__ = ["LocalMesh", "run"]
