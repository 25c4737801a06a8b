"""Writing files others read while we write them (Envoy, the agent, local mode): atomically, with their mode."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a hidden temporary file beside ``path`` with ``mode``, then rename it over ``path``: a
    reader sees the old content or the new, never a part, and never wider permissions than ``mode``."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
