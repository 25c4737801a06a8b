"""Expiry status for `meshctl certs status` and `meshctl check`: per certificate its serial, issuer, notAfter and
time left; a warning when a root has less than 60 days left (the outage Linkerd users keep hitting).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from xds_server.ca.clock import resolve_now
from xds_server.ca.issuer import Issuer

__all__ = [
    "ROOT_WARNING_THRESHOLD",
    "CertStatus",
    "cert_status",
    "format_time_left",
    "issuer_status",
    "root_expiry_warning",
]

ROOT_WARNING_THRESHOLD = timedelta(days=60)


@dataclass(frozen=True)
class CertStatus:
    role: str
    subject: str
    serial: str
    issuer: str
    not_before: datetime
    not_after: datetime
    time_left: timedelta
    spiffe_ids: tuple[str, ...] = ()

    @property
    def expired(self) -> bool:
        return self.time_left <= timedelta(0)

    def describe(self) -> str:
        who = ", ".join(self.spiffe_ids) or self.subject
        return (
            f"{self.role} {who}: serial {self.serial}, issued by {self.issuer}, "
            f"not after {self.not_after:%Y-%m-%dT%H:%M:%SZ} ({format_time_left(self.time_left)})"
        )


def format_time_left(left: timedelta) -> str:
    """``"59d 23h left"``, ``"3h 12m left"``, ``"expired 2d 1h ago"``."""
    seconds = int(abs(left).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        text = f"{days}d {hours}h"
    elif hours:
        text = f"{hours}h {minutes}m"
    else:
        text = f"{minutes}m {secs}s"
    return f"{text} left" if left > timedelta(0) else f"expired {text} ago"


def _name(name: x509.Name) -> str:
    return name.rfc4514_string() or "<empty>"


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _spiffe_ids(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return ()
    return tuple(u for u in san.get_values_for_type(x509.UniformResourceIdentifier) if u.startswith("spiffe://"))


def cert_status(cert: x509.Certificate, *, now: datetime | None = None, role: str | None = None) -> CertStatus:
    now = resolve_now(now)
    if role is None:
        role = ("root" if cert.issuer == cert.subject else "intermediate") if _is_ca(cert) else "leaf"
    return CertStatus(
        role=role,
        subject=_name(cert.subject),
        serial=f"{cert.serial_number:x}",
        issuer=_name(cert.issuer),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        time_left=cert.not_valid_after_utc - now,
        spiffe_ids=_spiffe_ids(cert),
    )


def issuer_status(issuer: Issuer, *, now: datetime | None = None) -> list[CertStatus]:
    """The issuer, the intermediates above it, then the root."""
    now = resolve_now(now, issuer.clock)
    return [cert_status(c, now=now) for c in (issuer.certificate, *issuer.chain)]


def root_expiry_warning(
    root: x509.Certificate, *, now: datetime | None = None, threshold: timedelta = ROOT_WARNING_THRESHOLD
) -> str | None:
    """A warning when ``root`` has less than ``threshold`` (60 days) left, else None."""
    status = cert_status(root, now=now, role="root")
    if status.time_left >= threshold:
        return None
    if status.expired:
        return (
            f"the root CA {status.subject} (serial {status.serial}) EXPIRED at "
            f"{status.not_after:%Y-%m-%dT%H:%M:%SZ}: every mTLS handshake fails; rotate the root now"
        )
    return (
        f"the root CA {status.subject} (serial {status.serial}) expires at {status.not_after:%Y-%m-%dT%H:%M:%SZ} "
        f"({format_time_left(status.time_left)}, under {threshold.days} days): start a staged root rotation"
    )
