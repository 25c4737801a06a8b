"""A proxy with many new resources is pre-flighted in two parts by real Envoy in parallel (``--mode validate``, one
binary bootstrap per part): the verdict is the verdict of one run on the whole, what passed is remembered, and a
policy Envoy refuses in either part is pinned on that policy while every other one is programmed (also in a burst
checked in one run: Envoy's error on a field rule dumps the whole bootstrap, so the refused bootstrap is halved until
the culprit is alone). Runs the control plane's own build with the incremental translator, as the operator does."""

from __future__ import annotations

import pytest

from mesh_operator.api import common
from mesh_operator.control.build import Incremental, build
from mesh_operator.translate import PolicyKey, policies
from mesh_operator.translate.status import REJECTED_BY_ENVOY
from tests.envoy.inventories import fan_out
from xds_server.preflight import Preflight
from xds_server.snapshot import SECRET, Snapshot

pytestmark = pytest.mark.envoy

N = 100  # 100 listeners and 100 clusters: above split_min


@pytest.fixture
def no_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our own validation off: only the pre-flight check stands between a bad policy and the proxies."""
    monkeypatch.setattr(common, "MAX_DURATION_MS", 10**30)
    monkeypatch.setattr(policies, "validate_object", lambda obj: [])


def _names(snap: Snapshot) -> set[str]:
    return {name for t, by_name in snap.resources.items() if t != SECRET for name in by_name}


def _key(i: int) -> PolicyKey:
    return PolicyKey("TrafficPolicy", "b", f"tp-{i}")


def _part_of(preflight: Preflight, bad: frozenset[int], i: int) -> int:
    """The part of the split check that holds policy i's listener."""
    snap = build(fan_out(N, bad), {}, {}, None, Incremental()).snapshots["b/client"]
    parts = preflight._parts(snap, _names(snap), 2)
    assert len(parts) == 2
    listener = f"outbound|{20000 + i}|svc-{i}.b"
    (found,) = [n for n, part in enumerate(parts) if any(r.name == listener for r in part.listeners)]
    return found


def test_a_split_check_reaches_the_verdict_of_one_run_and_remembers_what_envoy_accepted() -> None:
    split, whole = Preflight(workers=2, split_min=64, idle=lambda: True), Preflight(workers=2, split_min=0)
    a = build(fan_out(N), {}, {}, split, Incremental())
    b = build(fan_out(N), {}, {}, whole, Incremental())
    assert not a.failed and not b.failed
    assert all(o.accepted for o in a.translation.outcomes.values())
    assert {k: o.accepted for k, o in a.translation.outcomes.items()} == {
        k: o.accepted for k, o in b.translation.outcomes.items()
    }
    assert {n: s.version for n, s in a.snapshots.items()} == {n: s.version for n, s in b.snapshots.items()}
    assert (split.stats.split_checks, split.stats.binary_runs) == (1, 2)
    assert (whole.stats.split_checks, whole.stats.binary_runs) == (0, 1)
    # The same state again, translated afresh: every resource of both parts is known-good, Envoy is not asked.
    build(fan_out(N), a.translation.in_force, a.rejected, split, Incremental())
    assert split.stats.envoy_runs == 2


@pytest.mark.parametrize(("bad", "part"), [(0, 0), (N - 1, 1)], ids=["in the first part", "in the second part"])
def test_a_policy_envoy_refuses_in_either_part_is_pinned_on_it_and_every_other_policy_is_programmed(
    bad: int, part: int, no_validation: None
) -> None:
    preflight = Preflight(workers=2, split_min=64, idle=lambda: True)
    assert _part_of(preflight, frozenset({bad}), bad) == part
    result = build(fan_out(N, frozenset({bad})), {}, {}, preflight, Incremental())
    assert preflight.stats.split_checks >= 1
    outcome = result.translation.outcomes[_key(bad)]
    assert outcome.reason == REJECTED_BY_ENVOY and not outcome.accepted
    message = " ".join(str(v) for v in outcome.violations)
    assert "Envoy refuses the config this produces (pre-flight check on b/client)" in message, message
    assert not result.failed  # pinned on the policy, not on the proxy
    others = {k: o.accepted for k, o in result.translation.outcomes.items() if k != _key(bad)}
    assert len(others) == N - 1 and all(others.values())
    assert "b/client" in result.snapshots


def test_two_refused_policies_in_different_parts_are_both_pinned_and_the_rest_is_programmed(
    no_validation: None,
) -> None:
    preflight = Preflight(workers=2, split_min=64, idle=lambda: True)
    bad = frozenset({0, N - 1})
    assert {_part_of(preflight, bad, i) for i in bad} == {0, 1}
    result = build(fan_out(N, bad), {}, {}, preflight, Incremental())
    outcomes = result.translation.outcomes
    assert {k for k, o in outcomes.items() if not o.accepted} == {_key(i) for i in bad}
    assert all(outcomes[_key(i)].reason == REJECTED_BY_ENVOY for i in bad)
    assert not result.failed and "b/client" in result.snapshots


def test_a_policy_envoy_refuses_in_a_burst_checked_in_one_run_is_pinned_on_it_alone(no_validation: None) -> None:
    # Envoy's error on a field rule dumps the whole bootstrap, naming every policy of the burst: the refused
    # bootstrap is halved until the culprit is alone, so the 99 others are not blamed with it.
    preflight = Preflight(workers=2, split_min=0)
    result = build(fan_out(N, frozenset({37})), {}, {}, preflight, Incremental())
    assert preflight.stats.split_checks == 0
    outcomes = result.translation.outcomes
    assert {k for k, o in outcomes.items() if not o.accepted} == {_key(37)}
    assert outcomes[_key(37)].reason == REJECTED_BY_ENVOY
    assert not result.failed and "b/client" in result.snapshots


def test_on_a_busy_machine_a_large_check_is_one_run() -> None:
    preflight = Preflight(workers=2, split_min=64, idle=lambda: False)
    result = build(fan_out(N), {}, {}, preflight, Incremental())
    assert not result.failed and all(o.accepted for o in result.translation.outcomes.values())
    assert (preflight.stats.split_checks, preflight.stats.binary_runs) == (0, 1)
