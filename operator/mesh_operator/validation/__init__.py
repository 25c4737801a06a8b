"""Validation shared by ``meshctl validate``, the translator and the admission webhook.

``validate_document`` turns one plain document (a dict from YAML or the Kubernetes API) into a typed object and
every violation found in it, each with its field path. Schema problems (types, enums, ranges, unknown fields) come
from the pydantic models; the rules that span fields live in one module per kind.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from mesh_operator.api import KINDS, AccessPolicy, AuthenticationPolicy, Inventory, Mesh, RetryPolicy, TrafficPolicy
from mesh_operator.api.common import GROUP_VERSION
from mesh_operator.api.gateway import GRPCRoute, HTTPRoute, XMesh
from mesh_operator.validation.access_policy import validate_access_policy
from mesh_operator.validation.authentication_policy import validate_authentication_policy
from mesh_operator.validation.envoy import check_envoy_rules
from mesh_operator.validation.gateway import is_gateway_document, parse_gateway_document
from mesh_operator.validation.inventory import validate_inventory
from mesh_operator.validation.mesh import validate_mesh
from mesh_operator.validation.modes import validate_mode
from mesh_operator.validation.ratelimit_global import validate_rate_limits
from mesh_operator.validation.retry_policy import validate_retry_policy
from mesh_operator.validation.traffic_policy import validate_traffic_policy
from mesh_operator.validation.violations import Collector, Violation, errors, format_path, warnings

ApiObject = TrafficPolicy | RetryPolicy | AccessPolicy | AuthenticationPolicy | Mesh | Inventory
#: What local mode reads: Meshwork's kinds and the Gateway API kinds (validation/gateway.py).
AnyObject = ApiObject | HTTPRoute | GRPCRoute | XMesh

_SEMANTIC: dict[type[Any], Callable[[Any, Collector], None]] = {
    TrafficPolicy: validate_traffic_policy,
    RetryPolicy: validate_retry_policy,
    AccessPolicy: validate_access_policy,
    AuthenticationPolicy: validate_authentication_policy,
    Mesh: validate_mesh,
    Inventory: validate_inventory,
}

__all__ = ["Checked", "Violation", "errors", "validate_document", "validate_object", "warnings"]


@dataclass(frozen=True)
class Checked:
    """A document after validation: the object when its schema is valid, and every violation."""

    obj: AnyObject | None
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.obj is not None and not errors(self.violations)


def validate_document(doc: Mapping[str, Any]) -> Checked:
    if not isinstance(doc, Mapping):
        return Checked(None, [Violation("", f"expected an object, got {type(doc).__name__}")])
    if is_gateway_document(doc):
        gateway_obj, found = parse_gateway_document(doc, _from_pydantic)
        return Checked(gateway_obj, found)
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if api_version != GROUP_VERSION:
        return Checked(None, [Violation("apiVersion", f"must be {GROUP_VERSION}, got {api_version!r}")])
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        return Checked(None, [Violation("kind", f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")])
    try:
        obj = model.model_validate(doc)
    except ValidationError as e:
        schema = [_from_pydantic(err) for err in e.errors()]
        return Checked(None, schema + _despite_schema_errors(model, doc, e))
    return Checked(obj, validate_object(obj))


def _despite_schema_errors(model: type[ApiObject], doc: Mapping[str, Any], error: ValidationError) -> list[Violation]:
    """The cross-field violations of a document with schema errors: the fields at fault are left out (a few
        rounds, as leaving one out can make its parent incomplete) and the rest is validated, so one typo does not hide
        the other mistakes. Violations of a field that was left out, under it, or of the object that lost it are dropped
    (they would be artefacts of the leaving out)."""
    trimmed: Any = copy.deepcopy(dict(doc))
    removed: list[str] = []
    for _ in range(4):
        for err in error.errors():
            loc = [p for p in err["loc"] if not (isinstance(p, str) and (p.startswith("function-") or "[" in p))]
            _remove(trimmed, loc, removed)
        try:
            obj = model.model_validate(trimmed)
        except ValidationError as e:
            error = e
            continue
        return [v for v in validate_object(obj) if not any(_near(v.path, r) for r in removed)]
    return []


def _remove(doc: Any, loc: list[str | int], removed: list[str]) -> None:
    """Drop the innermost mapping key on ``loc`` (list items are kept so later indexes stay true)."""
    keys = [i for i, p in enumerate(loc) if isinstance(p, str)]
    if not keys:
        return
    last = keys[-1]
    node = doc
    for p in loc[:last]:
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            return
    name = loc[last]
    aliases = {name, to_camel(str(name))}
    for k in list(node) if isinstance(node, dict) else ():
        if k in aliases:
            del node[k]
            removed.append(format_path(loc[: last + 1]))


def _near(path: str, removed: str) -> bool:
    parent = removed.rsplit(".", 1)[0] if "." in removed else ""
    return path in (removed, parent) or path.startswith((removed + ".", removed + "["))


def validate_object(obj: ApiObject) -> list[Violation]:
    """The cross-field rules of one already-typed object."""
    c = Collector()
    _SEMANTIC[type(obj)](obj, c)
    check_envoy_rules(obj.kind, obj, c)
    validate_mode(obj, c)
    validate_rate_limits(obj, c)
    return c.violations


def _from_pydantic(err: Any) -> Violation:
    loc = [p for p in err["loc"] if not (isinstance(p, str) and (p.startswith("function-") or "[" in p))]
    message = str(err["msg"])
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    elif err["type"] == "missing":
        message = "is required"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    return Violation(format_path(loc), message)
