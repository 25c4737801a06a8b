"""A minimal RFC 6902 JSON patch from the pod as submitted to the pod as injected.

Dictionaries are diffed key by key (so other webhooks' or the user's fields are never rewritten); a list that
changed length is replaced whole (a pod's container lists are short, and index arithmetic over inserts is where
patch bugs live).
"""

from __future__ import annotations

from typing import Any


def pointer(parts: list[str]) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def diff(old: Any, new: Any, parts: list[str] | None = None) -> list[dict[str, Any]]:
    parts = parts or []
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        ops: list[dict[str, Any]] = []
        for key in old:
            if key not in new:
                ops.append({"op": "remove", "path": pointer([*parts, key])})
        for key, value in new.items():
            if key not in old:
                ops.append({"op": "add", "path": pointer([*parts, key]), "value": value})
            else:
                ops += diff(old[key], value, [*parts, key])
        return ops
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        ops = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            ops += diff(a, b, [*parts, str(i)])
        return ops
    return [{"op": "replace", "path": pointer(parts), "value": new}]
