"""Staged root rotation (ANCHORS 9): four steps in order, each refused until its predecessor's material has
reached every proxy; a one-step swap is refused; the state survives a restart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from xds_server.ca import RootRotation, RotationPhase, RotationStep, SpiffeId, create_root
from xds_server.errors import RotationError, RotationStepRefused

T0 = datetime(2031, 3, 1, tzinfo=UTC)
OLD = create_root("mesh.example", now=T0)
NEW = create_root("mesh.example", now=T0)
WEB = SpiffeId("mesh.example", "shop", "web")
STEPS = list(RotationStep)


def rotated_to(phase: RotationPhase) -> RootRotation:
    rotation = RootRotation.start(OLD.certificate, NEW.certificate)
    while rotation.phase is not phase:
        assert rotation.next_step is not None
        rotation = rotation.advance(rotation.next_step, pending=set(), now=T0)
    return rotation


def test_a_rotation_walks_through_the_four_steps_in_order() -> None:
    rotation = RootRotation.start(OLD.certificate, NEW.certificate)
    seen = []
    for step in STEPS:
        assert rotation.next_step is step
        rotation = rotation.advance(step, pending=(), now=T0)
        seen.append((rotation.phase, rotation.bundle.roots, rotation.signing_root, rotation.reissue_leaves))
    old, new = OLD.certificate, NEW.certificate
    assert seen == [
        (RotationPhase.NEW_ROOT_ADDED, (old, new), old, False),
        (RotationPhase.ISSUER_SWITCHED, (old, new), new, False),
        (RotationPhase.LEAVES_REISSUED, (old, new), new, True),
        (RotationPhase.COMPLETE, (new,), new, True),
    ]
    assert rotation.next_step is None
    assert rotation.awaiting is None
    assert [r.step for r in rotation.completed] == STEPS


def test_before_the_first_step_the_bundle_holds_the_old_root_and_the_old_root_signs() -> None:
    rotation = RootRotation.start(OLD.certificate, NEW.certificate)
    assert rotation.phase is RotationPhase.PLANNED
    assert rotation.bundle.roots == (OLD.certificate,)
    assert rotation.signing_root == OLD.certificate


@pytest.mark.parametrize("step", STEPS)
def test_each_step_is_refused_while_proxies_are_pending_and_the_message_says_how_many(step: RotationStep) -> None:
    rotation = rotated_to(list(RotationPhase)[STEPS.index(step)])
    pending = {f"sidecar-{i}" for i in range(7)}
    with pytest.raises(RotationStepRefused, match=rf"refusing {step.value}: 7 proxies have not yet received") as info:
        rotation.advance(step, pending=pending, now=T0)
    assert "sidecar-0, sidecar-1, sidecar-2, sidecar-3, sidecar-4 and 2 more" in str(info.value)
    assert rotation.awaiting is not None
    assert rotation.awaiting in str(info.value)
    with pytest.raises(RotationStepRefused, match="1 proxy has not yet received"):
        rotation.advance(step, pending=["web-1"], now=T0)
    assert rotation.advance(step, pending=frozenset(), now=T0).phase is list(RotationPhase)[STEPS.index(step) + 1]


@pytest.mark.parametrize("step", STEPS[1:])
def test_a_one_step_swap_is_refused(step: RotationStep) -> None:
    rotation = RootRotation.start(OLD.certificate, NEW.certificate)
    with pytest.raises(RotationStepRefused, match="a one-step root swap breaks handshakes"):
        rotation.advance(step, pending=(), now=T0)


def test_skipping_the_leaf_reissue_is_refused() -> None:
    rotation = rotated_to(RotationPhase.ISSUER_SWITCHED)
    with pytest.raises(
        RotationStepRefused, match=r"the next step is reissue-leaves \(it would skip \['reissue-leaves'\]"
    ):
        rotation.advance(RotationStep.REMOVE_OLD_ROOT, pending=(), now=T0)


def test_a_step_already_taken_is_refused() -> None:
    rotation = rotated_to(RotationPhase.ISSUER_SWITCHED)
    with pytest.raises(RotationStepRefused, match="that step is already done"):
        rotation.advance(RotationStep.ADD_NEW_ROOT, pending=(), now=T0)
    with pytest.raises(RotationStepRefused, match="already complete"):
        rotated_to(RotationPhase.COMPLETE).advance(RotationStep.REMOVE_OLD_ROOT, pending=(), now=T0)


def test_pending_must_be_a_collection_of_names_not_a_string() -> None:
    with pytest.raises(TypeError, match="not a string"):
        RootRotation.start(OLD.certificate, NEW.certificate).advance(RotationStep.ADD_NEW_ROOT, pending="", now=T0)


def test_rotating_to_the_same_root_is_refused() -> None:
    with pytest.raises(RotationError, match="the new root is the old root"):
        RootRotation.start(OLD.certificate, OLD.certificate)


@pytest.mark.parametrize("phase", list(RotationPhase))
def test_the_state_survives_a_restart_through_json(phase: RotationPhase) -> None:
    rotation = rotated_to(phase)
    restored = RootRotation.from_dict(json.loads(json.dumps(rotation.to_dict())))
    assert restored == rotation
    assert restored.phase is phase
    assert restored.bundle == rotation.bundle
    if restored.next_step is not None:  # and it resumes where it stopped
        assert restored.advance(restored.next_step, pending=(), now=T0).phase is not phase


def _saved(**changes: Any) -> dict[str, Any]:
    data = rotated_to(RotationPhase.ISSUER_SWITCHED).to_dict()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "Other"}, "not a saved root rotation"),
        (_saved(version=2), "unsupported root rotation format version 2"),
        (_saved(phase="complete"), "disagrees with the completed steps"),
        (_saved(old_root="not pem"), "malformed"),
        (_saved(new_root=None), "malformed"),
        (_saved(completed=[{"step": "switch-issuer", "at": T0.isoformat()}]), "are not a prefix of"),
        (_saved(completed=[{"step": "explode", "at": T0.isoformat()}]), "malformed"),
        (_saved(completed=[{"step": "add-new-root", "at": "yesterday"}]), "malformed"),
        (_saved(completed=[{"step": "add-new-root"}]), "malformed"),
    ],
)
def test_a_corrupt_saved_state_is_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(RotationError, match=message):
        RootRotation.from_dict(data)


def verifies(bundle_roots: tuple[x509.Certificate, ...], leaf: x509.Certificate) -> bool:
    verifier = PolicyBuilder().store(Store(list(bundle_roots))).time(T0 + timedelta(hours=1)).build_client_verifier()
    try:
        verifier.verify(leaf, [])
    except VerificationError:
        return False
    return True


def test_during_the_rotation_leaves_of_both_roots_verify_and_after_it_only_the_new_ones() -> None:
    old_leaf = OLD.issue_keypair(WEB, now=T0).certificate
    new_leaf = NEW.issue_keypair(WEB, now=T0).certificate
    for phase in (RotationPhase.NEW_ROOT_ADDED, RotationPhase.ISSUER_SWITCHED, RotationPhase.LEAVES_REISSUED):
        roots = rotated_to(phase).bundle.roots
        assert verifies(roots, old_leaf)
        assert verifies(roots, new_leaf)
    final = rotated_to(RotationPhase.COMPLETE).bundle.roots
    assert verifies(final, new_leaf)
    assert not verifies(final, old_leaf)
