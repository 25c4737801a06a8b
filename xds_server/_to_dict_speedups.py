"""Make betterproto2 0.9.1's ``Message.to_dict`` fast without changing what it returns.

``to_dict`` (behind :func:`xds_server.serialize.proto_dict`: rendering, the pre-flight check) spends almost all of
its time in two per-call rebuilds of things that depend only on the message class: ``typing.get_type_hints`` of
the class (``Message._type_hints``) and a fresh ``pydantic_core.SchemaValidator`` of its schema
(``Message._validate``). Both are replaced by per-class cached equivalents: same hints, same validator, same
validation, same output (``tests/unit/test_serialize_fast_path.py`` compares outputs; measured 15.6 s -> see
the test's docstring). Pinned to 0.9.1 like the rest of the serialization workarounds.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, get_type_hints

import betterproto2
import pydantic_core

_PINNED = "0.9.1"
_LOCK = threading.Lock()
_HINTS: dict[type, dict[str, Any]] = {}
_VALIDATORS: dict[type, pydantic_core.SchemaValidator] = {}
_installed = False


def _type_hints(cls: type[betterproto2.Message]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = get_type_hints(cls, sys.modules[cls.__module__].__dict__, {})
        with _LOCK:
            _HINTS[cls] = hints
    return hints


def _validate(self: betterproto2.Message) -> None:
    if not self._is_pydantic():
        raise TypeError("Validation is only available for pydantic dataclasses.")
    cls = type(self)
    validator = _VALIDATORS.get(cls)
    if validator is None:
        validator = pydantic_core.SchemaValidator(cls.__pydantic_core_schema__)  # type: ignore[attr-defined]
        with _LOCK:
            _VALIDATORS[cls] = validator
    fields = self.__dict__.copy()
    del fields["_unknown_fields"]
    validator.validate_python(fields)


def install() -> None:
    """Replace the two methods (idempotent). Refuses any betterproto2 but the pinned version."""
    global _installed
    if _installed:
        return
    if betterproto2.__version__ != _PINNED:  # pragma: no cover - guards an upgrade
        raise ImportError(f"xds_server._to_dict_speedups mirrors betterproto2 {_PINNED}; re-check it")
    betterproto2.Message._type_hints = classmethod(_type_hints)  # type: ignore[method-assign,assignment]
    betterproto2.Message._validate = _validate  # type: ignore[method-assign]
    _installed = True
