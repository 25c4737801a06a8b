"""Envoy's own field rules, applied to API values: what passes here, Envoy's proto validation accepts.

The rules come from Envoy's protos (``envoy_rules.json``, see :mod:`mesh_operator.validation.envoy_fields`), plus
the limits of the wire types themselves (uint32, protobuf Duration). Each violation names *our* field path and
the Envoy field whose rule it breaks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

from pydantic import BaseModel

from mesh_operator.api.common import duration_ms
from mesh_operator.validation.envoy_fields import ENVOY_FIELDS, Conversion
from mesh_operator.validation.violations import Collector

UINT32_MAX = 2**32 - 1
INT32_MAX = 2**31 - 1
#: protobuf Duration's range: +-315,576,000,000 s (10,000 years)
DURATION_MAX_MS = 315_576_000_000_000

#: protoc-gen-validate's well-known regexes (strict: false is what Envoy uses for headers)
_WELL_KNOWN = {
    ("HTTP_HEADER_NAME", False): re.compile(r"^[^\x00\n\r]+$"),
    ("HTTP_HEADER_VALUE", False): re.compile(r"^[^\x00\n\r]*$"),
    ("HTTP_HEADER_NAME", True): re.compile(r"^:?[0-9a-zA-Z!#$%&'*+\-.^_|~`]+$"),
    ("HTTP_HEADER_VALUE", True): re.compile(r"^[^\x00-\x08\x0A-\x1F\x7F]*$"),
}


@cache
def rules() -> dict[str, dict[str, Any]]:
    text = resources.files("mesh_operator.validation").joinpath("envoy_rules.json").read_text()
    loaded: dict[str, dict[str, Any]] = json.loads(text)
    return loaded


def check_envoy_rules(kind: str, obj: BaseModel, c: Collector) -> None:
    """Check every mapped field of ``obj`` (an API object of ``kind``) against its Envoy field's rules."""
    table = rules()
    doc = obj.model_dump(by_alias=True, exclude_none=True)
    for path, (message, field, conversion) in ENVOY_FIELDS.get(kind, {}).items():
        entry = table[f"{message}.{field}"]
        where = f"{message.rsplit('.', 1)[-1]}.{field}"
        for loc, value in _values(doc, path):
            problem = _problem(value, conversion, entry)
            if problem:
                c.at(*loc).error(None, f"{problem} (Envoy's rule for {where})")


def _values(doc: Any, path: str) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every value at ``path`` (``a.b[].c``) with its concrete location."""
    parts = path.split(".")

    def walk(node: Any, i: int, loc: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], Any]]:
        if i == len(parts):
            yield loc, node
            return
        part = parts[i]
        many = part.endswith("[]")
        name = part.removesuffix("[]")
        if not isinstance(node, dict) or name not in node:
            return
        child = node[name]
        if many:
            if isinstance(child, list):
                for j, item in enumerate(child):
                    yield from walk(item, i + 1, (*loc, name, j))
        else:
            yield from walk(child, i + 1, (*loc, name))

    yield from walk(doc, 0, ())


def _seconds_ms(text: str) -> float:
    return float(text.removesuffix("s")) * 1000


def _problem(value: Any, conversion: Conversion, entry: dict[str, Any]) -> str | None:
    kind, r = entry["type"], entry["rules"]
    if entry.get("repeated") and "repeated" in r:
        r = r["repeated"].get("items", {})
    if conversion == "duration":
        ms = duration_ms(value)
        d = r.get("duration", {})
        if ms > DURATION_MAX_MS:
            return "must be at most 315576000000s (the largest protobuf Duration)"
        for op, text in (("gt", "greater than"), ("gte", "at least"), ("lt", "less than"), ("lte", "at most")):
            if op in d and not _compare(ms, op, _seconds_ms(d[op])):
                return f"must be {text} {d[op]}"
        return None
    if kind in ("uint32", "int32", "enum", "int64") and isinstance(value, int):
        return _int_problem(value, kind, r, entry)
    if kind == "string" and isinstance(value, str):
        return _string_problem(value, r.get("string", {}))
    return None


def _compare(a: float, op: str, b: float) -> bool:
    return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]


def _int_problem(value: int, kind: str, r: dict[str, Any], entry: dict[str, Any]) -> str | None:
    if kind == "uint32" and not 0 <= value <= UINT32_MAX:
        return f"must be between 0 and {UINT32_MAX} (a uint32)"
    if kind in ("int32", "enum") and not -INT32_MAX - 1 <= value <= INT32_MAX:
        return f"must be at most {INT32_MAX} (an int32)"
    if kind == "enum":
        e = r.get("enum", {})
        if e.get("definedOnly") and value not in entry.get("enum_values", ()):
            return f"{value} is not a status code Envoy knows"
        if value in e.get("notIn", ()):
            return f"must not be {value}"
        return None
    bounds = r.get(kind, {})
    for op, text in (("gt", "greater than"), ("gte", "at least"), ("lt", "less than"), ("lte", "at most")):
        if op in bounds and not _compare(value, op, float(bounds[op])):
            return f"must be {text} {bounds[op]}"
    return None


def _string_problem(value: str, s: dict[str, Any]) -> str | None:
    if "minLen" in s and len(value) < int(s["minLen"]):
        return f"must have at least {s['minLen']} character(s)"
    if "maxBytes" in s and len(value.encode()) > int(s["maxBytes"]):
        return f"must be at most {s['maxBytes']} bytes"
    if "wellKnownRegex" in s:
        rx = _WELL_KNOWN[(s["wellKnownRegex"], bool(s.get("strict", True)))]
        if not rx.match(value):
            strict = s.get("strict", True)
            return "must not contain control characters" if strict else "must not contain NUL, CR or LF characters"
    if "pattern" in s and not re.search(s["pattern"], value):
        return f"must match {s['pattern']}"
    return None
