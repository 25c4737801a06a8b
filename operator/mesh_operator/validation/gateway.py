"""Validation of the Gateway API kinds Meshwork reads (HTTPRoute, GRPCRoute, XMesh), with field paths.

The API server already applies upstream's CRD schema and CEL rules in a cluster; this covers local mode (YAML
files) and what upstream's schema cannot know: that Envoy will run a regex (RE2, program size), that a filter's
type names the field that is set, that ``backendRequest`` fits in ``request``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from mesh_operator.api.common import duration_ms
from mesh_operator.api.gateway import (
    GATEWAY_API_VERSIONS,
    GATEWAY_KINDS,
    GRPCRoute,
    HTTPRoute,
    XMesh,
    filters_of,
    rules_of,
)
from mesh_operator.validation.regex import regex_problem
from mesh_operator.validation.violations import Violation

_FILTER_FIELD = {
    "RequestHeaderModifier": "requestHeaderModifier",
    "ResponseHeaderModifier": "responseHeaderModifier",
    "RequestMirror": "requestMirror",
    "RequestRedirect": "requestRedirect",
    "URLRewrite": "urlRewrite",
    "CORS": "cors",
    "ExternalAuth": "externalAuth",
    "ExtensionRef": "extensionRef",
}


def is_gateway_document(doc: Mapping[str, Any]) -> bool:
    api_version = doc.get("apiVersion")
    return isinstance(api_version, str) and api_version.split("/")[0] in (
        "gateway.networking.k8s.io",
        "gateway.networking.x-k8s.io",
    )


def parse_gateway_document(
    doc: Mapping[str, Any], from_pydantic: Callable[[Any], Violation]
) -> tuple[HTTPRoute | GRPCRoute | XMesh | None, list[Violation]]:
    kind = doc.get("kind")
    model = GATEWAY_KINDS.get(kind) if isinstance(kind, str) else None
    if model is None or not isinstance(kind, str):
        known = ", ".join(GATEWAY_KINDS)
        return None, [Violation("kind", f"unknown Gateway API kind {kind!r}; Meshwork reads {known}")]
    if doc.get("apiVersion") != GATEWAY_API_VERSIONS[kind]:
        want = GATEWAY_API_VERSIONS[kind]
        return None, [Violation("apiVersion", f"must be {want} for {kind}, got {doc.get('apiVersion')!r}")]
    try:
        obj = model.model_validate(doc)
    except ValidationError as e:
        return None, [from_pydantic(err) for err in e.errors()]
    return obj, validate_gateway_object(obj)


def validate_gateway_object(obj: HTTPRoute | GRPCRoute | XMesh) -> list[Violation]:
    out: list[Violation] = []
    if isinstance(obj, XMesh):
        return out
    names = [r.name for r in rules_of(obj) if r.name]
    for i, r in enumerate(rules_of(obj)):
        if r.name and names.count(r.name) > 1:
            out.append(Violation(f"spec.rules[{i}].name", f"rule name {r.name!r} is used more than once"))
        for k, f in enumerate(filters_of(r)):
            dumped = f.model_dump(by_alias=True, exclude_none=True)
            want = _FILTER_FIELD[f.type]
            if want not in dumped:
                out.append(Violation(f"spec.rules[{i}].filters[{k}].{want}", f"is required for type {f.type}"))
            extra = sorted(set(dumped) - {"type", want})
            if extra:
                out.append(Violation(f"spec.rules[{i}].filters[{k}].{extra[0]}", f"must not be set for type {f.type}"))
            if f.request_mirror is not None and f.request_mirror.percent is not None and f.request_mirror.fraction:
                out.append(
                    Violation(f"spec.rules[{i}].filters[{k}].requestMirror", "set percent or fraction, not both")
                )
            fr = f.request_mirror.fraction if f.request_mirror is not None else None
            if fr is not None and fr.numerator > fr.denominator:
                out.append(Violation(f"spec.rules[{i}].filters[{k}].requestMirror.fraction", "numerator > denominator"))
    if isinstance(obj, HTTPRoute):
        _http(obj, out)
    else:
        _grpc(obj, out)
    return out


def _regex(path: str, value: str, out: list[Violation]) -> None:
    if (problem := regex_problem(value)) is not None:
        out.append(Violation(path, problem))


def _http(obj: HTTPRoute, out: list[Violation]) -> None:
    for i, r in enumerate(obj.spec.rules):
        for j, m in enumerate(r.matches):
            p = f"spec.rules[{i}].matches[{j}]"
            if m.path is not None:
                if m.path.type == "RegularExpression":
                    _regex(f"{p}.path.value", m.path.value, out)
                elif not m.path.value.startswith("/"):
                    out.append(Violation(f"{p}.path.value", "must start with /"))
            for kind, items in (("headers", m.headers), ("queryParams", m.query_params)):
                for k, h in enumerate(items):
                    if h.type == "RegularExpression":
                        _regex(f"{p}.{kind}[{k}].value", h.value, out)
        t = r.timeouts
        if t is not None and t.request and t.backend_request:
            req, backend = duration_ms(t.request), duration_ms(t.backend_request)
            if req and backend > req:
                out.append(Violation(f"spec.rules[{i}].timeouts.backendRequest", "must not exceed timeouts.request"))
        for k, f in enumerate(r.filters):
            mod = f.request_redirect or f.url_rewrite
            if mod is not None and mod.path is not None:
                want = "replaceFullPath" if mod.path.type == "ReplaceFullPath" else "replacePrefixMatch"
                if (
                    getattr(mod.path, "replace_full_path" if want == "replaceFullPath" else "replace_prefix_match")
                    is None
                ):
                    out.append(
                        Violation(f"spec.rules[{i}].filters[{k}].{_FILTER_FIELD[f.type]}.path.{want}", "is required")
                    )
        if any(f.type == "RequestRedirect" for f in r.filters) and r.backend_refs:
            out.append(Violation(f"spec.rules[{i}].backendRefs", "must be empty when a RequestRedirect filter is set"))
        if any(f.type == "RequestRedirect" for f in r.filters) and any(f.type == "URLRewrite" for f in r.filters):
            out.append(Violation(f"spec.rules[{i}].filters", "RequestRedirect and URLRewrite cannot be combined"))


def _grpc(obj: GRPCRoute, out: list[Violation]) -> None:
    for i, r in enumerate(obj.spec.rules):
        for j, m in enumerate(r.matches):
            p = f"spec.rules[{i}].matches[{j}]"
            if m.method is not None and m.method.type == "RegularExpression":
                for part in ("service", "method"):
                    if (v := getattr(m.method, part)) is not None:
                        _regex(f"{p}.method.{part}", v, out)
            for k, h in enumerate(m.headers):
                if h.type == "RegularExpression":
                    _regex(f"{p}.headers[{k}].value", h.value, out)
