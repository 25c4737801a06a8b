"""Local mode re-reads every file on a change; the state it hands over is rebased on the previous one, so the
translator sees the change as a delta (the unchanged objects the previous ones, the collections layered) and
re-derives only what it touches, with the result a translation from scratch gives."""

from __future__ import annotations

from dataclasses import replace

from mesh_operator.translate import translate_mesh
from mesh_operator.translate.incremental import Translator
from mesh_operator.translate.rebase import rebased
from tests.unit.test_incremental_translate import _bytes, _wide_mesh
from xds_server.layered import changed_since, positions_since


def test_a_state_read_afresh_with_one_policy_edited_is_the_previous_one_with_that_position_replaced() -> None:
    first, again = _wide_mesh(6), _wide_mesh(6)  # two reads: equal values, no object in common
    at = next(i for i, p in enumerate(again.policies) if p.metadata.name == "svc-3")
    p = again.policies[at]
    edited = p.model_copy(update={"metadata": p.metadata.model_copy(update={"generation": 2})})
    read = replace(again, policies=tuple(edited if q is p else q for q in again.policies))
    got = rebased(first, read)
    assert got == read  # the same values
    assert got.mesh is first.mesh and got.services is first.services and got.workloads is first.workloads
    assert set(positions_since(first.policies, got.policies) or ()) == {at}
    assert all(got.policies[i] is first.policies[i] for i in range(len(first.policies)) if i != at)


def test_a_state_read_afresh_with_one_service_changed_layers_only_that_service() -> None:
    first, again = _wide_mesh(6), _wide_mesh(6)
    svc = again.services["wide/svc-2"]
    read = replace(again, services={**again.services, "wide/svc-2": replace(svc, instances=svc.instances[:1])})
    got = rebased(first, read)
    assert dict(got.services) == read.services and list(got.services) == list(read.services)
    assert set(changed_since(first.services, got.services) or ()) == {"wide/svc-2"}
    assert got.workloads is first.workloads


def test_the_translator_rebuilds_only_the_readers_of_a_change_in_a_rebased_state() -> None:
    first = _wide_mesh(6)
    translator = Translator()
    translator.translate(first)
    again = _wide_mesh(6)
    svc = again.services["wide/svc-2"]
    read = replace(again, services={**again.services, "wide/svc-2": replace(svc, instances=svc.instances[:1])})
    got = translator.translate(rebased(first, read))
    assert translator.last_path == "incremental"
    assert translator.changed == {"wide/edge", "wide/svc-2-a", "wide/svc-2-b"}
    want = translate_mesh(read)
    assert got.proxies == want.proxies
    assert all(_bytes(got.proxies[n]) == _bytes(cfg) for n, cfg in want.proxies.items())
    # without the rebase every object of the read is new: every proxy is rebuilt
    fresh = Translator()
    fresh.translate(first)
    fresh.translate(read)
    assert fresh.changed == set(read.workloads)
