"""The incremental translator gives exactly what a full translation gives, over randomized change sequences.

Each example starts from a golden case's input (every policy kind, conflicts, invalid and refused policies,
rate limits without a rate-limit service, JWT, tracing, transparent proxies, TCP) and applies a random
sequence of changes the sources make: policies removed, re-added, edited (new generation, another target, an
older creation time), services losing instances or changing protocol, services and workloads removed, equal
objects rebuilt (as the Kubernetes adapter does), upstreams dropped, last accepted versions and verdicts
(pre-flight rejections) changing, the Mesh replaced; and the same kinds of change handed over *with their delta*
(a policy tuple with positions replaced, service and workload maps layered on the previous ones, see
``xds_server.layered``; local mode's re-read state rebased on the previous one), which the translator reads off
instead of diffing the whole state. After every step the incremental result must equal ``translate_mesh`` of the
same state (IR, outcomes with their warnings, the policies in force) and every proxy's serialized snapshot must be
byte-identical.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mesh_operator.control.build import Incremental, build
from mesh_operator.loader import load_text
from mesh_operator.translate import MeshState, Rejection, fingerprint, incremental, key_of, translate_mesh
from mesh_operator.translate.incremental import Translator
from mesh_operator.translate.rebase import rebased
from mesh_operator.translate.state import Policy
from mesh_operator.translate.status import REJECTED_BY_ENVOY
from mesh_operator.validation.violations import Violation
from xds_server.layered import GONE, Layered, LayeredSeq
from xds_server.translate import snapshot_of_proxy

CASES_DIR = Path(__file__).parents[1] / "golden" / "cases"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "input.yaml").is_file())


def _state(case: str) -> MeshState:
    return load_text((CASES_DIR / case / "input.yaml").read_text(), "input.yaml").state()


def _variants(p: Policy, services: list[str]) -> list[Policy]:
    """Other versions of a policy: a new generation, another target, older than every other policy."""
    meta = p.metadata
    out: list[Policy] = [p.model_copy(update={"metadata": meta.model_copy(update={"generation": meta.generation + 1})})]
    out.append(
        p.model_copy(update={"metadata": meta.model_copy(update={"creation_timestamp": "2000-01-01T00:00:00Z"})})
    )
    ref = p.spec.target_ref
    if ref.kind == "Service":
        for name in services[:2]:
            if name != ref.name:
                spec = p.spec.model_copy(update={"target_ref": ref.model_copy(update={"name": name})})
                out.append(p.model_copy(update={"spec": spec}))
    return out


def _bytes(cfg: Any) -> dict[str, dict[str, bytes]]:
    return {t: {n: r.body for n, r in by.items()} for t, by in snapshot_of_proxy(cfg).resources.items()}


class _Universe:
    def __init__(self, case: str) -> None:
        self.base = _state(case)
        names = sorted({s.name for s in self.base.services.values()})
        self.pool: list[Policy] = []
        for p in self.base.policies:
            self.pool.append(p)
            self.pool += _variants(p, names)
        self.meshes = [self.base.mesh, self.base.mesh.model_copy(deep=True)]


ops = st.lists(st.tuples(st.integers(0, 15), st.integers(0, 1_000)), min_size=1, max_size=12)


def _apply(u: _Universe, state: MeshState, op: int, n: int, history: dict[Any, list[Policy]]) -> MeshState:
    policies = list(state.policies)
    if op == 0 and policies:  # a policy deleted
        del policies[n % len(policies)]
    elif op in (1, 2) and u.pool:  # a policy created or edited: one version per key in the state
        p = u.pool[n % len(u.pool)]
        policies = [q for q in policies if key_of(q) != key_of(p)] + [p]
    elif op == 3 and state.services:  # a service loses an instance (pod churn) or gets it back
        key = sorted(state.services)[n % len(state.services)]
        svc = state.services[key]
        base = u.base.services.get(key, svc)
        instances = svc.instances[1:] if len(svc.instances) == len(base.instances) else base.instances
        return replace(state, services={**state.services, key: replace(svc, instances=instances)})
    elif op == 4 and state.services:  # a service's protocol changes
        key = sorted(state.services)[n % len(state.services)]
        svc = state.services[key]
        protocol = ("http", "http2", "tcp")[n % 3]
        return replace(state, services={**state.services, key: replace(svc, protocol=protocol)})
    elif op == 5 and state.services:  # a service deleted, or all of them back
        if n % 2:
            key = sorted(state.services)[n % len(state.services)]
            return replace(state, services={k: v for k, v in state.services.items() if k != key})
        return replace(state, services={**u.base.services, **state.services})
    elif op == 6:  # the source rebuilds every service and workload: equal objects, new identities
        return replace(
            state,
            services={k: copy.copy(v) for k, v in state.services.items()},
            workloads={k: copy.copy(v) for k, v in state.workloads.items()},
        )
    elif op == 7 and state.workloads:  # a workload deleted, or all back; an upstream dropped
        key = sorted(state.workloads)[n % len(state.workloads)]
        w = state.workloads[key]
        if n % 3 == 0:
            return replace(state, workloads={k: v for k, v in state.workloads.items() if k != key})
        if n % 3 == 1 and w.upstreams:
            return replace(state, workloads={**state.workloads, key: replace(w, upstreams=w.upstreams[1:])})
        return replace(state, workloads={**u.base.workloads, **state.workloads})
    elif op == 8:  # the Mesh object replaced (an equal one, or back)
        return replace(state, mesh=u.meshes[n % 2])
    elif op == 9 and state.refused:  # an unparseable policy fixed
        return replace(state, refused=state.refused[1:])
    elif op == 10:
        return replace(state, refused=u.base.refused)
    elif op == 11:  # the same policies, fresh tuple in another order
        policies = policies[n % max(1, len(policies)) :] + policies[: n % max(1, len(policies))]
    elif op == 12 and policies and u.pool:  # with its delta: a policy edited (or replaced by another) in place
        p = u.pool[n % len(u.pool)]
        at = next((i for i, q in enumerate(policies) if key_of(q) == key_of(p)), n % len(policies))
        on = _rebased(state.policies, n)
        if on is not state.policies and key_of(p) in {key_of(q) for i, q in enumerate(on) if i != at}:
            on = state.policies  # (one version per key)
        return replace(state, policies=LayeredSeq.over(on, {at: p}))
    elif op == 13 and state.services:  # with its delta: a service's instances change, it goes, or it is back
        key = sorted(u.base.services)[n % len(u.base.services)]
        on = _rebased(state.services, n)
        svc = on.get(key)
        if svc is None:
            return replace(state, services=Layered.over(on, {key: u.base.services[key]}))
        if n % 3 == 0:
            return replace(state, services=Layered.over(on, {key: GONE}))
        base = u.base.services[key]
        instances = svc.instances[1:] if len(svc.instances) == len(base.instances) else base.instances
        return replace(state, services=Layered.over(on, {key: replace(svc, instances=instances)}))
    elif op == 14 and state.workloads:  # with its delta: a workload goes, loses an upstream, or is back
        key = sorted(u.base.workloads)[n % len(u.base.workloads)]
        w = state.workloads.get(key)
        if w is None:
            return replace(state, workloads=Layered.over(state.workloads, {key: u.base.workloads[key]}))
        if n % 2 == 0 or not w.upstreams:
            return replace(state, workloads=Layered.over(state.workloads, {key: GONE}))
        return replace(state, workloads=Layered.over(state.workloads, {key: replace(w, upstreams=w.upstreams[1:])}))
    elif op == 15:  # local mode: every file read afresh (all objects new), one change, rebased on the last state
        fresh = replace(
            state,
            mesh=state.mesh.model_copy(deep=True),
            services={k: copy.copy(v) for k, v in state.services.items()},
            workloads={k: copy.copy(v) for k, v in state.workloads.items()},
            policies=tuple(p.model_copy(deep=True) for p in state.policies),
        )
        return rebased(state, _apply(u, fresh, n % 12, n // 12, history))
    return replace(state, policies=tuple(policies))


def _rebased(value: Any, n: int) -> Any:
    """Now and then a source layers its next delta on an earlier base rather than on its last value (its last
    layers undone): the translator must then look at both values' layers."""
    if n % 4 == 1 and isinstance(value, Layered | LayeredSeq):
        return value._base
    return value


def _inputs(state: MeshState, n: int, history: dict[Any, list[Policy]]) -> tuple[dict[Any, Policy], dict[Any, Any]]:
    """A last accepted version for some policies (an earlier version seen), a pre-flight verdict for others."""
    last_good: dict[Any, Policy] = {}
    rejected: dict[Any, Rejection] = {}
    for i, p in enumerate(sorted(state.policies, key=lambda q: str(key_of(q)))):
        k = key_of(p)
        seen = history.setdefault(k, [])
        if p not in seen:
            seen.append(p)
        if (n >> (i % 10)) & 1 and len(seen) > 1:
            last_good[k] = seen[(n + i) % len(seen)]
        if (n >> ((i + 3) % 10)) & 1 and (n + i) % 4 == 0:
            rejected[k] = Rejection(fingerprint(p), REJECTED_BY_ENVOY, (Violation("", "Envoy said no"),))
    return last_good, rejected


def _assert_same(state: MeshState, got: Any, last_good: Any, rejected: Any) -> None:
    want = translate_mesh(state, last_good=last_good, rejected=rejected)
    assert got.proxies == want.proxies
    assert list(got.proxies) == list(want.proxies)
    assert got.outcomes == want.outcomes
    assert got.in_force == want.in_force
    assert got.failed == want.failed
    for node, cfg in want.proxies.items():
        assert _bytes(got.proxies[node]) == _bytes(cfg), node


@pytest.mark.parametrize("case", CASES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=ops, sequence_diff=st.booleans())
# (two deltas in a row, the second layered on the first one's base: both values' layers must be read)
@example(steps=[(12, 2), (12, 5)], sequence_diff=True)
@example(steps=[(13, 2), (13, 5), (14, 1), (14, 5)], sequence_diff=True)
def test_every_change_sequence_translates_incrementally_to_what_a_full_translation_gives(
    case: str, steps: list[tuple[int, int]], sequence_diff: bool
) -> None:
    # the policy tuple is diffed as an edited sequence (few changes, in place) or as a set of objects (many)
    with mock.patch.object(incremental, "SPAN_BASE", 64 if sequence_diff else -(10**9)):
        _check_sequence(case, steps)


def _check_sequence(case: str, steps: list[tuple[int, int]]) -> None:
    u = _universes.setdefault(case, _Universe(case))
    translator = Translator()
    state = u.base
    history: dict[Any, list[Policy]] = {}
    got = translator.translate(state)
    _assert_same(state, got, None, None)
    # the outcomes handed out stay what they were after later translations (the control plane keeps them for
    # status while the next round runs): each step's changes are layered on, never written into them
    kept = [(got.outcomes, dict(got.outcomes))]
    for op, n in steps:
        state = _apply(u, state, op, n, history)
        last_good, rejected = _inputs(state, n, history)
        got = translator.translate(state, last_good=last_good, rejected=rejected)
        _assert_same(state, got, last_good, rejected)
        kept.append((got.outcomes, dict(got.outcomes)))
        for outcomes, then in kept:
            assert dict(outcomes) == then and len(outcomes) == len(then)


_universes: dict[str, _Universe] = {}


def _readers(state: MeshState, service: str) -> set[str]:
    return {
        n
        for n, w in state.workloads.items()
        if w.transparent or service in {ib.service for ib in w.inbound} or service in {up.service for up in w.upstreams}
    }


def _wide_mesh(services: int) -> MeshState:
    """``services`` services with two instances and a TrafficPolicy each, and one client calling all of them."""
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "meshwork.io/v1alpha1",
            "kind": "Inventory",
            "metadata": {"name": "wide"},
            "spec": {
                "services": [
                    {
                        "name": f"svc-{i}",
                        "namespace": "wide",
                        "ports": [{"port": 80}],
                        "instances": [
                            {"name": f"svc-{i}-{v}", "port": 8080, "address": f"127.0.{i}.{j}", "labels": {"v": v}}
                            for j, v in ((1, "a"), (2, "b"))
                        ],
                    }
                    for i in range(services)
                ],
                "clients": [
                    {
                        "name": "edge",
                        "namespace": "wide",
                        "sidecar": {
                            "upstreams": [{"service": f"svc-{i}", "localPort": 10000 + i} for i in range(services)]
                        },
                    }
                ],
            },
        }
    ]
    for i in range(services):
        docs.append(
            {
                "apiVersion": "meshwork.io/v1alpha1",
                "kind": "TrafficPolicy",
                "metadata": {"name": f"svc-{i}", "namespace": "wide"},
                "spec": {
                    "targetRef": {"name": f"svc-{i}"},
                    "rules": [{"name": "r", "matches": [{"path": {"type": "PathPrefix", "value": "/r"}}]}],
                },
            }
        )
    return load_text(yaml.safe_dump_all(docs), "wide.yaml").state()


def test_a_one_policy_change_rebuilds_only_the_proxies_that_read_that_policy() -> None:
    state = _wide_mesh(12)
    translator = Translator()
    translator.translate(state)
    assert translator.last_path == "full"
    assert translator.changed == set(state.workloads)
    for i in (3, 7):
        p = next(q for q in state.policies if q.metadata.name == f"svc-{i}")
        spec = p.spec.model_copy(update={"rules": []})
        edited = p.model_copy(update={"spec": spec, "metadata": p.metadata.model_copy(update={"generation": 2})})
        state = replace(state, policies=tuple(edited if q is p else q for q in state.policies))
        got = translator.translate(state)
        assert translator.last_path == "incremental"
        assert translator.changed == {"wide/edge", f"wide/svc-{i}-a", f"wide/svc-{i}-b"}
        assert translator.patched == {"wide/edge"}  # its IR patched: only a service it calls changed
        assert got.proxies == translate_mesh(state).proxies


def test_an_endpoint_change_rebuilds_the_callers_and_the_servers_of_that_service_only() -> None:
    state = _wide_mesh(12)
    incremental = Incremental()
    # (an incremental build's maps are views, valid until the next build: keep what is compared)
    edge_before = build(state, {}, {}, None, incremental).snapshots["wide/edge"]
    svc = state.services["wide/svc-5"]
    state = replace(state, services={**state.services, "wide/svc-5": replace(svc, instances=svc.instances[:1])})
    after = build(state, {}, {}, None, incremental)
    assert incremental.translator.changed == {"wide/edge", "wide/svc-5-a", "wide/svc-5-b"}
    edge_after = after.snapshots["wide/edge"]
    changed_types = {
        t.rsplit(".", 1)[-1] for t in edge_after.resources if edge_before.type_version(t) != edge_after.type_version(t)
    }
    assert changed_types == {"ClusterLoadAssignment"}
    assert after.snapshots["wide/edge"].resources == build(state, {}, {}, None).snapshots["wide/edge"].resources


def test_nothing_changed_rebuilds_no_proxy() -> None:
    state = _state("basic")
    translator = Translator()
    first = dict(translator.translate(state).proxies)
    again = translator.translate(replace(state, policies=tuple(state.policies)))
    assert translator.changed == set()
    assert all(again.proxies[n] is first[n] for n in first)


@pytest.mark.parametrize("case", ["basic", "traffic-management", "access", "transparent", "global-rate-limit"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=ops)
def test_builds_with_the_incremental_state_give_the_snapshots_and_verdicts_of_builds_without_it(
    case: str, steps: list[tuple[int, int]]
) -> None:
    u = _universes.setdefault(case, _Universe(case))
    incremental = Incremental()
    state = u.base
    history: dict[Any, list[Policy]] = {}
    last_good: dict[Any, Policy] = {}
    rejected: dict[Any, Rejection] = {}
    for op, n in [(1, 0), *steps]:
        state = _apply(u, state, op, n, history)
        last_good, extra = _inputs(state, n, history)
        rejected = {**rejected, **extra}
        got = build(state, last_good, rejected, None, incremental)
        want = build(state, last_good, rejected, None)
        assert {n: s.resources for n, s in got.snapshots.items()} == {n: s.resources for n, s in want.snapshots.items()}
        assert {n: s.version for n, s in got.snapshots.items()} == {n: s.version for n, s in want.snapshots.items()}
        assert got.resources == want.resources
        assert got.rejected == want.rejected
        assert got.failed == want.failed
        assert got.translation.outcomes == want.translation.outcomes
        rejected = dict(got.rejected)


def test_a_snapshot_patched_for_one_changed_cluster_equals_the_one_built_from_scratch() -> None:
    state = _state("traffic-management")
    incremental = Incremental()
    first = dict(build(state, {}, {}, None, incremental).snapshots)
    key = next(k for k, s in state.services.items() if len(s.instances) > 1)
    svc = state.services[key]
    fewer = replace(state, services={**state.services, key: replace(svc, instances=svc.instances[1:])})
    got = build(fewer, {}, {}, None, incremental)
    want = build(fewer, {}, {}, None)
    assert dict(got.snapshots) != first
    for node, snap in want.snapshots.items():
        assert got.snapshots[node].resources == snap.resources
        assert got.snapshots[node].version == snap.version
