"""Generate CustomResourceDefinitions from the pydantic models.

``model_json_schema()`` is not a valid structural CRD schema as is: ``$ref``s are inlined, ``anyOf: [X, null]``
becomes ``X`` (absence is how Kubernetes says null), titles and ``default: null`` go, and ``additionalProperties``
never sits beside ``properties``. Cross-field rules are CEL (``x-kubernetes-validations``) declared on the models.

Run ``python -m mesh_operator.crdgen`` to rewrite ``crds/``; a test fails when the checked-in files drift.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from mesh_operator.api import API_GROUP, API_VERSION, CRD_KINDS

_PLURALS = {"Mesh": "meshes"}
_SHORT_NAMES = {"TrafficPolicy": ["tp"], "RetryPolicy": ["rp"], "AccessPolicy": ["ap"], "Mesh": []}
_SHORT_NAMES |= {"AuthenticationPolicy": ["authn"]}
_DROP = {"title", "$defs"}

_ACCEPTED = '.status.conditions[?(@.type=="Accepted")]'
_COLUMNS: dict[str, list[dict[str, Any]]] = {
    "Mesh": [
        {"name": "Trust Domain", "type": "string", "jsonPath": ".spec.trustDomain"},
        {"name": "mTLS", "type": "string", "jsonPath": ".spec.mtls.mode"},
    ],
    "TrafficPolicy": [{"name": "Target", "type": "string", "jsonPath": ".spec.targetRef.name"}],
    "RetryPolicy": [
        {"name": "Target", "type": "string", "jsonPath": ".spec.targetRef.name"},
        {"name": "Attempts", "type": "integer", "jsonPath": ".spec.attempts"},
    ],
    "AccessPolicy": [
        {"name": "Target", "type": "string", "jsonPath": ".spec.targetRef.name"},
        {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
    ],
    "AuthenticationPolicy": [
        {"name": "Target", "type": "string", "jsonPath": ".spec.targetRef.name"},
        {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
    ],
}
_COMMON_COLUMNS: list[dict[str, Any]] = [
    {"name": "Accepted", "type": "string", "jsonPath": f"{_ACCEPTED}.status"},
    {"name": "Reason", "type": "string", "jsonPath": f"{_ACCEPTED}.reason", "priority": 1},
    {"name": "Applied", "type": "string", "jsonPath": ".status.proxies.summary"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def plural(kind: str) -> str:
    return _PLURALS.get(kind, kind.lower()[:-1] + "ies" if kind.endswith("y") else kind.lower() + "s")


def structural_schema(model: type[Any]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    schema: dict[str, Any] = _clean(raw, defs)
    props = schema["properties"]
    props["metadata"] = {"type": "object"}
    for key in ("apiVersion", "kind"):
        props[key] = {"type": "string"}
    schema.pop("required", None)
    schema["required"] = [k for k in ("spec",) if k in raw.get("required", [])] or []
    if not schema["required"]:
        del schema["required"]
    return schema


def _clean(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_clean(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _clean({**target, **extra}, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) == 1:
            return _clean({**options[0], **rest}, defs)
        node = {**rest, "anyOf": options}
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k in _DROP or (k == "default" and v is None):
            continue
        if k == "const":
            out["enum"] = [v]
            continue
        out[k] = _clean(v, defs) if k != "x-kubernetes-validations" else v
    if "properties" in out:
        out.pop("additionalProperties", None)
        out["type"] = "object"
    elif out.get("type") == "object" and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("additionalProperties") is True:
        out.pop("additionalProperties")
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "enum" in out and "type" not in out:
        out["type"] = "integer" if all(isinstance(e, int) for e in out["enum"]) else "string"
    return out


def crd(kind: str) -> dict[str, Any]:
    model = CRD_KINDS[kind]
    name = plural(kind)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{name}.{API_GROUP}", "labels": {"app.kubernetes.io/part-of": "meshwork"}},
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": name,
                "singular": kind.lower(),
                "shortNames": _SHORT_NAMES[kind],
                "categories": ["meshwork"],
            },
            "scope": "Cluster" if kind == "Mesh" else "Namespaced",
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _COLUMNS[kind]
                    + [c for c in _COMMON_COLUMNS if kind != "Mesh" or c["name"] != "Applied"],
                    "schema": {"openAPIV3Schema": structural_schema(model)},
                }
            ],
        },
    }


def render_all() -> dict[str, str]:
    """File name -> YAML text, for every CRD."""
    return {
        f"{API_GROUP}_{plural(kind)}.yaml": "# Generated by `python -m mesh_operator.crdgen`. Do not edit.\n"
        + yaml.safe_dump(crd(kind), sort_keys=False, width=120)
        for kind in CRD_KINDS
    }


def main(argv: list[str] | None = None) -> int:
    out = Path((argv or sys.argv[1:] or ["crds"])[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (out / name).write_text(text)
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
