"""Rules an AuthenticationPolicy must follow beyond its schema (so that Envoy accepts what we accept)."""

from __future__ import annotations

import json
import urllib.parse

from mesh_operator.api.authentication_policy import AuthenticationPolicy, JwtProvider
from mesh_operator.api.common import duration_ms
from mesh_operator.validation.violations import Collector

_KEY_TYPES = ("RSA", "EC", "oct", "OKP")
_BAD_VALUE_CHARS = ("\x00", "\r", "\n")


def remote_jwks_address(uri: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a remote JWKS URI; ``ValueError`` when Envoy could not fetch from it."""
    u = urllib.parse.urlsplit(uri)
    if u.scheme not in ("http", "https"):
        raise ValueError("use an http:// or https:// URI")
    if u.username is not None or u.password is not None:
        raise ValueError("credentials in the URI are not supported")
    if u.fragment:
        raise ValueError("a URI fragment has no meaning here")
    try:
        port = u.port
    except ValueError as e:
        raise ValueError(f"invalid port: {e}") from None
    if not u.hostname:
        raise ValueError("the URI has no host")
    return u.scheme, u.hostname, port or (443 if u.scheme == "https" else 80)


def _check_inline(text: str, c: Collector) -> None:
    try:
        doc = json.loads(text)
    except ValueError as e:
        c.error("inline", f"not JSON: {e}")
        return
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list) or not keys:
        c.error("inline", 'a JWKS is an object with a non-empty "keys" list')
        return
    for i, key in enumerate(keys):
        if not isinstance(key, dict) or key.get("kty") not in _KEY_TYPES:
            c.error("inline", f"keys[{i}]: kty must be one of {', '.join(_KEY_TYPES)}")


def _check_provider(p: JwtProvider, c: Collector) -> None:
    jc = c.at("jwks")
    if (p.jwks.inline is None) == (p.jwks.remote is None):
        jc.error(None, "set exactly one of inline, remote")
    if p.jwks.inline is not None:
        _check_inline(p.jwks.inline, jc)
    if p.jwks.remote is not None:
        rc = jc.at("remote")
        try:
            remote_jwks_address(p.jwks.remote.uri)
        except ValueError as e:
            rc.error("uri", str(e))
        if duration_ms(p.jwks.remote.cache_duration) < 1000:
            rc.error("cacheDuration", "must be at least 1s")
        if duration_ms(p.jwks.remote.timeout) < 1:
            rc.error("timeout", "must be more than 0")
    for i, loc in enumerate(p.from_):
        lc = c.at("from", i)
        if sum(x is not None for x in (loc.header, loc.query_param, loc.cookie)) != 1:
            lc.error(None, "set exactly one of header, queryParam, cookie")
        if loc.header is not None and any(ch in loc.header.prefix for ch in _BAD_VALUE_CHARS):
            lc.at("header").error("prefix", "must not hold NUL, CR or LF")
    headers = [h.header.lower() for h in p.claims_to_headers]
    if len(headers) != len(set(headers)):
        c.error("claimsToHeaders", "header names must be unique")
    for i, h in enumerate(p.claims_to_headers):
        if h.header.lower() in ("host", "authorization", "content-length", "transfer-encoding", "te", "connection"):
            c.at("claimsToHeaders", i).error("header", f"{h.header!r} cannot carry a claim")
    for i, aud in enumerate(p.audiences):
        if not aud:
            c.at("audiences").error(i, "must not be empty")


def validate_authentication_policy(policy: AuthenticationPolicy, c: Collector) -> None:
    s = c.at("spec")
    for i, provider in enumerate(policy.spec.providers):
        _check_provider(provider, s.at("providers", i))
    names = [p.name for p in policy.spec.providers]
    if len(names) != len(set(names)):
        s.error("providers", "provider names must be unique")
