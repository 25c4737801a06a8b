"""Errors raised by ``mesh_operator``.

Invalid policy is data (``Accepted=False``), never an exception. These are for the operator's own failures::

    MeshworkError
    ├── RenderError      offline rendering could not produce config (unknown node, unreadable cert files)
    └── LocalModeError   local mode could not start (ports taken, no Envoy binary, bad directory)
"""

from __future__ import annotations


class MeshworkError(Exception):
    """Base of every error ``mesh_operator`` raises."""


class RenderError(MeshworkError):
    pass


class LocalModeError(MeshworkError):
    pass
