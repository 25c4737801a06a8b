"""When to renew a certificate: at about half its life, jittered so a fleet does not renew in lockstep, and
never later than expiry minus a safety margin.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from cryptography import x509

__all__ = ["DEFAULT_SAFETY_MARGIN", "renewal_time", "renewal_time_for"]

DEFAULT_SAFETY_MARGIN = timedelta(minutes=5)


def renewal_time(
    not_before: datetime,
    not_after: datetime,
    *,
    rng: random.Random,
    fraction: float = 0.5,
    jitter: float = 0.1,
    safety_margin: timedelta = DEFAULT_SAFETY_MARGIN,
) -> datetime:
    """``not_before + lifetime * (fraction ± jitter)``, the offset drawn uniformly from ``rng``, then clamped into
    ``[not_before, not_after - safety_margin]`` (``not_before`` when the certificate is shorter than the margin:
    renew at once).
    """
    if not 0.0 <= fraction <= 1.0 or not 0.0 <= jitter <= 1.0:
        raise ValueError("fraction and jitter must be within [0, 1]")
    if safety_margin < timedelta(0):
        raise ValueError("the safety margin must not be negative")
    lifetime = not_after - not_before
    if lifetime <= timedelta(0):
        return not_before
    share = fraction + rng.uniform(-jitter, jitter)
    at = not_before + lifetime * share
    latest = not_after - safety_margin
    return max(not_before, min(at, latest))


def renewal_time_for(
    certificate: x509.Certificate,
    *,
    rng: random.Random,
    fraction: float = 0.5,
    jitter: float = 0.1,
    safety_margin: timedelta = DEFAULT_SAFETY_MARGIN,
) -> datetime:
    return renewal_time(
        certificate.not_valid_before_utc,
        certificate.not_valid_after_utc,
        rng=rng,
        fraction=fraction,
        jitter=jitter,
        safety_margin=safety_margin,
    )
