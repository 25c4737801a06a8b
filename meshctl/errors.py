"""Errors ``meshctl`` raises. Every command turns them into a message on stderr and an exit code::

MeshctlError
└── AdminUnavailable   the control plane's admin endpoint cannot be reached or refused the request (exit 2)
"""

from __future__ import annotations


class MeshctlError(Exception):
    """Base of every error ``meshctl`` raises."""


class AdminUnavailable(MeshctlError):
    pass
