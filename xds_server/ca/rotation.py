"""Staged root rotation as a pure state machine.

A one-step root swap breaks every handshake between a proxy that already has the new root and one that does not.
So a rotation goes through four steps, each refused until the caller says the previous step's material has
reached every proxy (``pending`` is the set of proxies still missing it; it must be empty)::

    PLANNED ──ADD_NEW_ROOT──▶ NEW_ROOT_ADDED ──SWITCH_ISSUER──▶ ISSUER_SWITCHED ──REISSUE_LEAVES──▶ LEAVES_REISSUED
        bundle = old            bundle = old + new             new leaves signed by new root     every leaf re-signed
                                                                                                         │
                                                          COMPLETE ◀──REMOVE_OLD_ROOT──────────────────────┘
                                                          bundle = new

The state is a value (`to_dict` / `from_dict`) so a restarted control plane resumes where it stopped.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from xds_server.ca.bundle import TrustBundle, fingerprint
from xds_server.ca.clock import resolve_now
from xds_server.errors import CertificateError, RotationError, RotationStepRefused

__all__ = ["RootRotation", "RotationPhase", "RotationStep", "StepRecord"]

FORMAT_VERSION = 1


class RotationStep(enum.Enum):
    ADD_NEW_ROOT = "add-new-root"
    SWITCH_ISSUER = "switch-issuer"
    REISSUE_LEAVES = "reissue-leaves"
    REMOVE_OLD_ROOT = "remove-old-root"


class RotationPhase(enum.Enum):
    PLANNED = "planned"
    NEW_ROOT_ADDED = "new-root-added"
    ISSUER_SWITCHED = "issuer-switched"
    LEAVES_REISSUED = "leaves-reissued"
    COMPLETE = "complete"


_STEPS = tuple(RotationStep)
_PHASES = tuple(RotationPhase)
# What must have reached every proxy before each step may be taken (the previous step's material).
_PRECONDITION = {
    RotationStep.ADD_NEW_ROOT: "the current trust bundle (old root only)",
    RotationStep.SWITCH_ISSUER: "the trust bundle holding both the old and the new root",
    RotationStep.REISSUE_LEAVES: "the issuer switch (renewed leaves signed by the new root)",
    RotationStep.REMOVE_OLD_ROOT: "a leaf signed by the new root",
}


@dataclass(frozen=True)
class StepRecord:
    step: RotationStep
    at: datetime


@dataclass(frozen=True)
class RootRotation:
    old_root: x509.Certificate
    new_root: x509.Certificate
    completed: tuple[StepRecord, ...] = ()

    def __post_init__(self) -> None:
        if fingerprint(self.old_root) == fingerprint(self.new_root):
            raise RotationError("the new root is the old root; nothing to rotate")
        try:
            TrustBundle.of(self.old_root, self.new_root)
        except CertificateError as exc:
            raise RotationError(f"cannot rotate: {exc}") from None
        steps = tuple(r.step for r in self.completed)
        if steps != _STEPS[: len(steps)]:
            raise RotationError(f"completed steps {[s.value for s in steps]} are not a prefix of {_values(_STEPS)}")

    @classmethod
    def start(cls, old_root: x509.Certificate, new_root: x509.Certificate) -> RootRotation:
        return cls(old_root, new_root)

    # -- where we are ---------------------------------------------------------------------------------------------
    @property
    def phase(self) -> RotationPhase:
        return _PHASES[len(self.completed)]

    @property
    def next_step(self) -> RotationStep | None:
        done = len(self.completed)
        return _STEPS[done] if done < len(_STEPS) else None

    @property
    def awaiting(self) -> str | None:
        """What must have reached every proxy before `next_step` is allowed (None once complete)."""
        step = self.next_step
        return None if step is None else _PRECONDITION[step]

    @property
    def bundle(self) -> TrustBundle:
        """The trust bundle every proxy should hold in this phase."""
        if self.phase is RotationPhase.PLANNED:
            return TrustBundle.of(self.old_root)
        if self.phase is RotationPhase.COMPLETE:
            return TrustBundle.of(self.new_root)
        return TrustBundle.of(self.old_root, self.new_root)

    @property
    def signing_root(self) -> x509.Certificate:
        """The root whose issuer signs new leaves in this phase."""
        before_switch = (RotationPhase.PLANNED, RotationPhase.NEW_ROOT_ADDED)
        return self.old_root if self.phase in before_switch else self.new_root

    @property
    def reissue_leaves(self) -> bool:
        """True once every leaf must be re-signed by the new root (not only those due for renewal)."""
        return self.phase in (RotationPhase.LEAVES_REISSUED, RotationPhase.COMPLETE)

    # -- moving on ------------------------------------------------------------------------------------------------
    def advance(self, step: RotationStep, *, pending: Collection[str], now: datetime | None = None) -> RootRotation:
        """Take ``step``. ``pending`` names the proxies that have not yet received what `awaiting` describes;
        the step is refused (`RotationStepRefused`) unless it is empty, or if ``step`` is not `next_step`."""
        expected = self.next_step
        if expected is None:
            raise RotationStepRefused(f"refusing {step.value}: the rotation is already complete")
        if step is not expected:
            skipped = _STEPS[len(self.completed) : _STEPS.index(step)] if step in _STEPS[len(self.completed) :] else ()
            detail = (
                f"it would skip {_values(skipped)}; a one-step root swap breaks handshakes between proxies "
                "holding different roots"
                if skipped
                else "that step is already done"
            )
            raise RotationStepRefused(
                f"refusing {step.value} in phase {self.phase.value}: the next step is {expected.value} ({detail})"
            )
        if isinstance(pending, str):
            raise TypeError("pending is a collection of proxy names, not a string")
        if pending:
            names = sorted(pending)
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            raise RotationStepRefused(
                f"refusing {step.value}: {len(names)} prox{'y has' if len(names) == 1 else 'ies have'} not yet "
                f"received {_PRECONDITION[step]} ({shown}); retry once every proxy has it"
            )
        record = StepRecord(step, resolve_now(now))
        return RootRotation(self.old_root, self.new_root, (*self.completed, record))

    # -- persistence ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "RootRotation",
            "version": FORMAT_VERSION,
            "phase": self.phase.value,
            "old_root": _pem(self.old_root),
            "new_root": _pem(self.new_root),
            "completed": [{"step": r.step.value, "at": r.at.isoformat()} for r in self.completed],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RootRotation:
        """Inverse of `to_dict`; `RotationError` for anything that is not a valid saved rotation."""
        if not isinstance(data, Mapping) or data.get("kind") != "RootRotation":
            raise RotationError("not a saved root rotation (kind is not 'RootRotation')")
        if data.get("version") != FORMAT_VERSION:
            raise RotationError(f"unsupported root rotation format version {data.get('version')!r}")
        try:
            old_root = _load_pem(data["old_root"])
            new_root = _load_pem(data["new_root"])
            completed = tuple(
                StepRecord(RotationStep(r["step"]), resolve_now(datetime.fromisoformat(r["at"])))
                for r in data["completed"]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RotationError(f"saved root rotation is malformed: {type(exc).__name__}: {exc}") from None
        rotation = cls(old_root, new_root, completed)
        if "phase" in data and data["phase"] != rotation.phase.value:
            raise RotationError(f"saved phase {data['phase']!r} disagrees with the completed steps")
        return rotation


def _values(steps: Collection[RotationStep]) -> list[str]:
    return [s.value for s in steps]


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _load_pem(text: object) -> x509.Certificate:
    if not isinstance(text, str):
        raise TypeError("a root must be a PEM string")
    return x509.load_pem_x509_certificate(text.encode("ascii"))
