"""Expiry status for `meshctl certs status`: serial, issuer, notAfter, time left; a root warning under 60 days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from xds_server.ca import (
    SpiffeId,
    cert_status,
    create_intermediate,
    create_root,
    format_time_left,
    issuer_status,
    root_expiry_warning,
)

T0 = datetime(2031, 3, 1, tzinfo=UTC)
ROOT = create_root("mesh.example", now=T0)
INTER = create_intermediate(ROOT, now=T0)
WEB = SpiffeId("mesh.example", "shop", "web")


def test_a_leaf_status_names_its_serial_issuer_expiry_and_time_left() -> None:
    leaf = INTER.issue_keypair(WEB, now=T0)
    status = cert_status(leaf.certificate, now=T0 + timedelta(hours=1))
    assert status.role == "leaf"
    assert status.serial == f"{leaf.serial_number:x}"
    assert status.issuer == INTER.certificate.subject.rfc4514_string()
    assert status.not_after == T0 + timedelta(hours=24)
    assert status.time_left == timedelta(hours=23)
    assert status.spiffe_ids == (WEB.uri,)
    assert not status.expired
    assert status.describe().startswith(f"leaf {WEB.uri}: serial {status.serial}, issued by CN=Meshwork intermediate")
    assert status.describe().endswith("(23h 0m left)")


def test_an_issuer_status_lists_the_issuer_then_the_root() -> None:
    statuses = issuer_status(INTER, now=T0)
    assert [s.role for s in statuses] == ["intermediate", "root"]
    assert statuses[1].time_left == timedelta(days=3650)


def test_an_expired_certificate_says_so() -> None:
    leaf = ROOT.issue_keypair(WEB, now=T0).certificate
    status = cert_status(leaf, now=T0 + timedelta(days=2))
    assert status.expired
    assert "expired 1d 0h ago" in status.describe()


@pytest.mark.parametrize(
    ("left", "text"),
    [
        (timedelta(days=59, hours=23), "59d 23h left"),
        (timedelta(hours=3, minutes=12, seconds=5), "3h 12m left"),
        (timedelta(seconds=42), "0m 42s left"),
        (timedelta(0), "expired 0m 0s ago"),
        (-timedelta(days=2, hours=1), "expired 2d 1h ago"),
    ],
)
def test_time_left_reads_naturally(left: timedelta, text: str) -> None:
    assert format_time_left(left) == text


def test_a_root_with_more_than_60_days_left_raises_no_warning() -> None:
    assert root_expiry_warning(ROOT.certificate, now=ROOT.not_after - timedelta(days=60)) is None


def test_a_root_with_less_than_60_days_left_is_warned_about() -> None:
    warning = root_expiry_warning(ROOT.certificate, now=ROOT.not_after - timedelta(days=59, hours=23))
    assert warning is not None
    assert "59d 23h left, under 60 days" in warning
    assert "start a staged root rotation" in warning


def test_an_expired_root_is_warned_about_loudly() -> None:
    warning = root_expiry_warning(ROOT.certificate, now=ROOT.not_after + timedelta(seconds=1))
    assert warning is not None
    assert "EXPIRED" in warning
    assert "every mTLS handshake fails" in warning


def test_the_warning_threshold_is_configurable() -> None:
    now = ROOT.not_after - timedelta(days=100)
    assert root_expiry_warning(ROOT.certificate, now=now) is None
    assert root_expiry_warning(ROOT.certificate, now=now, threshold=timedelta(days=120)) is not None
