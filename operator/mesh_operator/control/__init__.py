"""The running control plane: translation on change, snapshots, the ADS server, certificates, status.

Source-agnostic: local mode feeds it from YAML files, the Kubernetes operator from watches. Both call
:meth:`ControlPlane.apply` with a :class:`~mesh_operator.translate.MeshState`.
"""

from mesh_operator.control.certs import CertificateManager
from mesh_operator.control.plane import ControlPlane

__all__ = ["CertificateManager", "ControlPlane"]
