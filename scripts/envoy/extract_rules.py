"""Extract Envoy's protoc-gen-validate rules for the fields Meshwork's API maps to (validation/envoy_fields.py).

Runs in the upb venv (`.venv-upb`, where `xds-protos` provides Envoy's compiled protos with their validate
options): `.venv-upb/bin/python scripts/envoy/extract_rules.py > operator/mesh_operator/validation/envoy_rules.json`.
`make envoy-rules` does that; tests/unit/test_envoy_rules.py fails when the checked-in file drifts from it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import pkgutil
import sys
from pathlib import Path

from google.protobuf import descriptor_pool, json_format
from google.protobuf.descriptor import FieldDescriptor
from validate import validate_pb2

ROOT = Path(__file__).resolve().parents[2]
FIELDS = ROOT / "operator" / "mesh_operator" / "validation" / "envoy_fields.py"


def _envoy_fields() -> dict[str, dict[str, tuple[str, str, str]]]:
    # Loaded by path: the package itself needs pydantic, which this venv does not have.
    spec = importlib.util.spec_from_file_location("envoy_fields", FIELDS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ENVOY_FIELDS  # type: ignore[no-any-return]


_MODULES = (
    "envoy.config.cluster.v3",
    "envoy.config.core.v3",
    "envoy.config.route.v3",
    "envoy.type.v3",
    "envoy.extensions.filters.common.fault.v3",
    "envoy.extensions.filters.http.fault.v3",
    "envoy.extensions.access_loggers.file.v3",
)
_WRAPPERS = {
    "google.protobuf.UInt32Value": "uint32",
    "google.protobuf.Int64Value": "int64",
    "google.protobuf.BoolValue": "bool",
}
_SCALARS = {
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_ENUM: "enum",
}


def _load() -> None:
    for name in _MODULES:
        pkg = importlib.import_module(name)
        for info in pkgutil.iter_modules(pkg.__path__):
            if info.name.endswith("_pb2"):
                importlib.import_module(f"{name}.{info.name}")


def _field_type(f: FieldDescriptor) -> str:
    if f.type == FieldDescriptor.TYPE_MESSAGE:
        full = f.message_type.full_name
        if full == "google.protobuf.Duration":
            return "duration"
        return _WRAPPERS.get(full, full)
    return _SCALARS.get(f.type, str(f.type))


def extract() -> dict[str, object]:
    _load()
    pool = descriptor_pool.Default()
    out: dict[str, object] = {}
    for mapping in _envoy_fields().values():
        for message, field, _ in mapping.values():
            key = f"{message}.{field}"
            if key in out:
                continue
            f = pool.FindMessageTypeByName(message).fields_by_name[field]
            opts = f.GetOptions()
            rules = (
                json_format.MessageToDict(opts.Extensions[validate_pb2.rules])
                if opts.HasExtension(validate_pb2.rules)
                else {}
            )
            entry: dict[str, object] = {
                "type": _field_type(f),
                "repeated": bool(getattr(f, "is_repeated", False)),
                "rules": rules,
            }
            if f.type == FieldDescriptor.TYPE_ENUM:
                entry["enum_values"] = sorted(v.number for v in f.enum_type.values)
            out[key] = entry
    return dict(sorted(out.items()))


if __name__ == "__main__":
    json.dump(extract(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
