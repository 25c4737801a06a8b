"""Local mode writes the rate-limit service's configuration (``envoyproxy/ratelimit``) from the policies.

The file is ``<state dir>/ratelimit/config/meshwork.yaml``: run the service with ``RUNTIME_ROOT=<state dir>``,
``RUNTIME_SUBDIRECTORY=ratelimit`` and ``RUNTIME_WATCH_ROOT=false`` and it reloads on every change. The file is
replaced atomically, and only when its content changes.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mesh_operator.translate.ratelimit_global import service_config
from mesh_operator.translate.state import MeshState


def config_path(state_dir: Path) -> Path:
    return state_dir / "ratelimit" / "config" / "meshwork.yaml"


def config_text(state: MeshState) -> str:
    """The service's configuration file (YAML) for ``state``: local mode's file, the cluster's ConfigMap."""
    return yaml.safe_dump(service_config(state), sort_keys=False)


def write_service_config(state_dir: Path, state: MeshState) -> bool:
    """Write the file if it changed; True when it did."""
    path = config_path(state_dir)
    text = config_text(state)
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / ".meshwork.yaml.tmp"
    tmp.write_text(text)
    tmp.replace(path)
    return True
