"""AccessPolicy ``from[].requestPrincipals`` and ``from[].claims``: the end user of a verified JWT.

A request principal is ``<issuer>/<subject>``, split at the last ``/`` (issuers are URLs; a subject holding a
``/`` cannot be written this way). Either part may be ``*`` (anything), ``text*`` (a prefix), ``*text`` (a
suffix) or plain text (exact). ``*`` alone matches any verified token. :func:`parse_request_principal` is the one
parser: validation reports its errors with the field path, translation uses its result.
"""

from __future__ import annotations

from typing import Literal

from mesh_operator.api.access_policy import Source
from mesh_operator.validation.violations import Collector

PartKind = Literal["exact", "prefix", "suffix"]
#: ``None``: any value.
Part = tuple[PartKind, str] | None


def _part(text: str, what: str) -> Part:
    if text == "*":
        return None
    if not text:
        raise ValueError(f"the {what} is empty")
    inner = text.strip("*")
    if "*" in inner or (text.startswith("*") and text.endswith("*")):
        raise ValueError(f"the {what} may hold one * only, at its start or end")
    if text.endswith("*"):
        return ("prefix", inner)
    if text.startswith("*"):
        return ("suffix", inner)
    return ("exact", text)


def parse_request_principal(text: str) -> tuple[Part, Part]:
    """``"https://issuer/alice"`` -> ``(("exact", "https://issuer"), ("exact", "alice"))``."""
    if text == "*":
        return None, None
    issuer, slash, subject = text.rpartition("/")
    if not slash:
        raise ValueError("write <issuer>/<subject> (either may be *), or * for any verified token")
    return _part(issuer, "issuer"), _part(subject, "subject")


def validate_request_source(src: Source, c: Collector) -> None:
    for i, text in enumerate(src.request_principals or []):
        try:
            parse_request_principal(text)
        except ValueError as e:
            c.at("requestPrincipals").error(i, str(e))
    names = [claim.name for claim in src.claims or []]
    if len(names) != len(set(names)):
        c.error("claims", "claim names must be unique")
