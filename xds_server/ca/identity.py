"""SPIFFE identities of workloads: ``spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>``.

The rules are the SPIFFE ID spec's (trust domain: lowercase letters, digits, ``.``, ``-``, ``_``; no port, user
info, query or fragment; at most 2048 bytes in all) plus Kubernetes' own: the namespace is a DNS-1123 label, the
service account a DNS-1123 subdomain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from xds_server.errors import InvalidSpiffeId

__all__ = ["SpiffeId", "validate_trust_domain"]

SCHEME = "spiffe://"
MAX_URI_LENGTH = 2048
MAX_TRUST_DOMAIN_LENGTH = 255

_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def validate_trust_domain(trust_domain: str) -> str:
    """Return ``trust_domain`` unchanged if it is a valid SPIFFE trust domain name, else raise `InvalidSpiffeId`."""
    if not trust_domain:
        raise InvalidSpiffeId("the trust domain is empty")
    if len(trust_domain) > MAX_TRUST_DOMAIN_LENGTH:
        raise InvalidSpiffeId(f"the trust domain is {len(trust_domain)} characters long (at most 255)")
    if not _TRUST_DOMAIN.fullmatch(trust_domain):
        bad = sorted({c for c in trust_domain if not _TRUST_DOMAIN.fullmatch(c)})
        raise InvalidSpiffeId(
            f"trust domain {trust_domain!r} has characters outside [a-z0-9._-]: {''.join(bad)!r}"
            " (lowercase only; no port, user info or path)"
        )
    return trust_domain


def _check_label(kind: str, value: str, *, subdomain: bool) -> None:
    limit = 253 if subdomain else 63
    pattern = _DNS1123_SUBDOMAIN if subdomain else _DNS1123_LABEL
    what = "a DNS-1123 subdomain" if subdomain else "a DNS-1123 label"
    if not value:
        raise InvalidSpiffeId(f"the {kind} is empty")
    if len(value) > limit:
        raise InvalidSpiffeId(f"the {kind} {value[:20]!r}... is {len(value)} characters long (at most {limit})")
    if not pattern.fullmatch(value):
        raise InvalidSpiffeId(
            f"the {kind} {value!r} is not {what} (lowercase letters, digits and '-'"
            f"{', dots between labels' if subdomain else ''}; starting and ending with a letter or digit)"
        )


@dataclass(frozen=True, order=True)
class SpiffeId:
    """A workload identity. ``str(id)`` is the URI; `SpiffeId.parse` is its inverse."""

    trust_domain: str
    namespace: str
    service_account: str

    def __post_init__(self) -> None:
        validate_trust_domain(self.trust_domain)
        _check_label("namespace", self.namespace, subdomain=False)
        _check_label("service account", self.service_account, subdomain=True)
        if len(self.uri) > MAX_URI_LENGTH:
            raise InvalidSpiffeId(f"the SPIFFE ID is {len(self.uri)} bytes long (at most {MAX_URI_LENGTH})")

    @classmethod
    def parse(cls, uri: str) -> SpiffeId:
        """Parse ``spiffe://<trust-domain>/ns/<ns>/sa/<sa>``; raise `InvalidSpiffeId` saying what is wrong."""
        if not isinstance(uri, str):
            raise InvalidSpiffeId(f"a SPIFFE ID must be a string, got {type(uri).__name__}")
        shown = uri if len(uri) <= 100 else uri[:100] + "..."
        if len(uri) > MAX_URI_LENGTH:
            raise InvalidSpiffeId(f"SPIFFE ID {shown!r} is {len(uri)} characters long (at most {MAX_URI_LENGTH})")
        if not uri.startswith(SCHEME):
            raise InvalidSpiffeId(f"SPIFFE ID {shown!r} does not start with {SCHEME!r} (the scheme is lowercase)")
        for char, what in (("?", "a query"), ("#", "a fragment"), ("%", "percent-encoding")):
            if char in uri:
                raise InvalidSpiffeId(f"SPIFFE ID {shown!r} has {what} ({char!r}); none is allowed")
        rest = uri[len(SCHEME) :]
        trust_domain, slash, path = rest.partition("/")
        if not slash:
            raise InvalidSpiffeId(f"SPIFFE ID {shown!r} has no path; expected /ns/<namespace>/sa/<service-account>")
        try:
            validate_trust_domain(trust_domain)
        except InvalidSpiffeId as exc:
            raise InvalidSpiffeId(f"SPIFFE ID {shown!r}: {exc}") from None
        segments = path.split("/")
        if len(segments) != 4 or segments[0] != "ns" or segments[2] != "sa":
            raise InvalidSpiffeId(
                f"SPIFFE ID {shown!r} has path /{path!s}; expected exactly /ns/<namespace>/sa/<service-account>"
            )
        try:
            return cls(trust_domain, segments[1], segments[3])
        except InvalidSpiffeId as exc:
            raise InvalidSpiffeId(f"SPIFFE ID {shown!r}: {exc}") from None

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"SpiffeId({self.uri!r})"
