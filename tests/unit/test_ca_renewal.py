"""Renewal timing: about half the life, jittered by ±10 % of the lifetime, never after expiry minus a margin."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xds_server.ca import SpiffeId, create_root, renewal_time, renewal_time_for

T0 = datetime(2031, 3, 1, tzinfo=UTC)
starts = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC))
lifetimes = st.timedeltas(min_value=timedelta(seconds=0), max_value=timedelta(days=400))
margins = st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=2))


@given(starts, lifetimes, margins, st.integers())
def test_renewal_is_never_after_expiry_minus_the_margin_nor_before_issuance(
    start: datetime, lifetime: timedelta, margin: timedelta, seed: int
) -> None:
    at = renewal_time(start, start + lifetime, rng=random.Random(seed), safety_margin=margin)
    assert start <= at
    assert at <= max(start, start + lifetime - margin)


@given(starts, st.timedeltas(min_value=timedelta(hours=1), max_value=timedelta(days=400)), st.integers())
def test_renewal_is_at_half_life_give_or_take_ten_percent(start: datetime, lifetime: timedelta, seed: int) -> None:
    at = renewal_time(start, start + lifetime, rng=random.Random(seed), safety_margin=timedelta(0))
    # A microsecond of slack for timedelta rounding.
    assert (
        start + lifetime * 0.4 - timedelta(microseconds=1) <= at <= start + lifetime * 0.6 + timedelta(microseconds=1)
    )


def test_renewals_of_a_fleet_are_spread_out() -> None:
    rng = random.Random(7)
    times = [renewal_time(T0, T0 + timedelta(hours=24), rng=rng) for _ in range(1000)]
    assert min(times) < T0 + timedelta(hours=10)
    assert max(times) > T0 + timedelta(hours=14)
    assert len(set(times)) > 990


def test_the_same_seed_gives_the_same_time() -> None:
    a = renewal_time(T0, T0 + timedelta(hours=24), rng=random.Random(1))
    assert a == renewal_time(T0, T0 + timedelta(hours=24), rng=random.Random(1))


def test_a_certificate_shorter_than_the_margin_is_renewed_at_once() -> None:
    at = renewal_time(T0, T0 + timedelta(minutes=4), rng=random.Random(0), safety_margin=timedelta(minutes=5))
    assert at == T0


def test_a_short_certificate_is_renewed_before_the_margin() -> None:
    # 10 minutes of life, renewal wanted at ~5 min ± 1 min, the 5-minute margin caps it at 5 min.
    for seed in range(50):
        at = renewal_time(T0, T0 + timedelta(minutes=10), rng=random.Random(seed))
        assert at <= T0 + timedelta(minutes=5)


def test_renewal_time_reads_a_certificate() -> None:
    root = create_root("mesh.example", now=T0)
    leaf = root.issue_keypair(SpiffeId("mesh.example", "a", "b"), now=T0).certificate
    at = renewal_time_for(leaf, rng=random.Random(3))
    assert leaf.not_valid_before_utc < at < leaf.not_valid_after_utc


@pytest.mark.parametrize(("fraction", "jitter"), [(1.5, 0.1), (0.5, -0.1), (-0.1, 0.0)])
def test_nonsense_parameters_are_refused(fraction: float, jitter: float) -> None:
    with pytest.raises(ValueError, match="within"):
        renewal_time(T0, T0 + timedelta(hours=1), rng=random.Random(0), fraction=fraction, jitter=jitter)
