"""Staged root rotation against a running :class:`~mesh_operator.control.plane.ControlPlane`.

Drives the pure :class:`xds_server.ca.RootRotation` state machine; each step changes what the plane serves and
is refused until every proxy has ACKed the snapshot carrying the previous step::

    add-new-root     the trust bundle (SDS ``ROOTCA``) holds old + new root; the xDS server trusts both
    switch-issuer    new leaves are signed by the new root (existing leaves stay until renewal)
    reissue-leaves   every leaf is re-signed by the new root now
    remove-old-root  the bundle holds the new root only

The state is saved after every step (``rotation.json`` beside the CA, `xds_server.ca.store.save_rotation`); the
new root's key waits in ``<ca_dir>/next/`` until the issuer switch, which makes it the CA of ``<ca_dir>``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xds_server.ca import (
    Issuer,
    RootRotation,
    RotationPhase,
    RotationStep,
    TrustBundle,
    cert_status,
    create_root,
    fingerprint,
    format_time_left,
    root_expiry_warning,
    store,
)
from xds_server.errors import RotationStepRefused

if TYPE_CHECKING:
    from mesh_operator.control.plane import ControlPlane

log = logging.getLogger(__name__)

NEXT_DIR = "next"


class RootRotator:
    def __init__(self, plane: ControlPlane, ca_dir: Path | None = None) -> None:
        self.plane = plane
        self.ca_dir = ca_dir
        self.rotation: RootRotation | None = None
        self._new_issuer: Issuer | None = None
        #: node -> snapshot version that carries the last step, and the generation it was built in
        self._step_versions: dict[str, str] = {}
        self._step_generation = 0
        self._lock = asyncio.Lock()  # one step at a time (concurrent admin requests)
        self._resume()

    def _resume(self) -> None:
        """Pick up a rotation saved by an earlier run: serve its trust bundle; the issuer on disk is already the
        right one (the switch saves the new root as the CA); before the switch the new key waits in ``next/``."""
        if self.ca_dir is None:
            return
        saved = store.load_rotation(self.ca_dir)
        if saved is None:
            return
        self.rotation = saved
        if saved.phase is RotationPhase.COMPLETE:
            return
        certs = self.plane.certs
        certs.bundle = saved.bundle
        pending_switch = saved.phase in (RotationPhase.PLANNED, RotationPhase.NEW_ROOT_ADDED)
        if pending_switch:
            self._new_issuer = store.load_issuer(self.ca_dir / NEXT_DIR, certs.trust_domain)
        log.info("resumed root rotation in phase %s (next: %s)", saved.phase.value, saved.next_step)

    # ---------------------------------------------------------------- where we are

    def pending(self) -> set[str]:
        """Proxies that have not ACKed a snapshot carrying the last step (or, before any step, the current one)."""
        status = self.plane.status
        acked = {node: p.acked_version for node, p in self.plane.sync.proxies().items()}
        reference = self._step_versions or status.desired
        out: set[str] = set()
        for node, desired in status.desired.items():
            carried = reference.get(node)
            if acked.get(node) == carried:
                continue
            if status.generation >= self._step_generation and acked.get(node) == desired:
                continue  # a later snapshot, built after the step, carries it too
            out.add(node)
        return out

    def status(self) -> dict[str, Any]:
        r = self.rotation
        if r is None:
            return {"phase": None, "next_step": RotationStep.ADD_NEW_ROOT.value, "pending": sorted(self.pending())}
        return {
            "phase": r.phase.value,
            "next_step": r.next_step.value if r.next_step else None,
            "awaiting": r.awaiting,
            "old_root": fingerprint(r.old_root)[:16],
            "new_root": fingerprint(r.new_root)[:16],
            "completed": [{"step": s.step.value, "at": s.at.isoformat()} for s in r.completed],
            "pending": sorted(self.pending()),
        }

    # ---------------------------------------------------------------- moving on

    async def advance(self, step: str | None = None) -> dict[str, Any]:
        """Take the next step (or ``step``, which must be the next one). `RotationStepRefused` when it is not the
        next step or proxies still miss the previous step's material. A finished rotation starts a new one."""
        requested = RotationStep(step) if step else None  # ValueError for an unknown step
        async with self._lock:
            return await self._advance(requested)

    async def _advance(self, requested: RotationStep | None) -> dict[str, Any]:
        rotation = self.rotation
        if rotation is None or rotation.phase is RotationPhase.COMPLETE:
            rotation, self._new_issuer = self._plan()
            self.rotation = rotation
        wanted = requested or rotation.next_step
        assert wanted is not None
        advanced = rotation.advance(wanted, pending=self.pending())
        self._apply(wanted)
        self.rotation = advanced
        self._save(wanted)
        await self._republish()
        log.info("root rotation: %s done; phase %s", wanted.value, advanced.phase.value)
        return self.status()

    def _plan(self) -> tuple[RootRotation, Issuer]:
        certs = self.plane.certs
        new = create_root(certs.trust_domain)
        rotation = RootRotation.start(certs.issuer.root, new.root)
        if self.ca_dir is not None:
            store.save_issuer(self.ca_dir / NEXT_DIR, new)
            store.save_rotation(self.ca_dir, rotation)
        log.info("root rotation planned: %s -> %s", fingerprint(rotation.old_root)[:16], fingerprint(new.root)[:16])
        return rotation, new

    def _apply(self, step: RotationStep) -> None:
        assert self.rotation is not None
        certs = self.plane.certs
        if step is RotationStep.ADD_NEW_ROOT:
            certs.bundle = TrustBundle.of(self.rotation.old_root, self.rotation.new_root)
            self.plane.trust_bundle_changed()
        elif step is RotationStep.SWITCH_ISSUER:
            assert self._new_issuer is not None and self._new_issuer.root == self.rotation.new_root
            certs.issuer = self._new_issuer
        elif step is RotationStep.REISSUE_LEAVES:
            certs.reissue_all()
        elif step is RotationStep.REMOVE_OLD_ROOT:
            certs.bundle = TrustBundle.of(self.rotation.new_root)
            self.plane.trust_bundle_changed()

    def _save(self, step: RotationStep) -> None:
        if self.ca_dir is None or self.rotation is None:
            return
        if step is RotationStep.SWITCH_ISSUER:
            store.save_issuer(self.ca_dir, self.plane.certs.issuer)
        store.save_rotation(self.ca_dir, self.rotation)

    async def _republish(self) -> None:
        self.plane.retranslate()
        await self.plane.wait_translated()
        self._step_versions = dict(self.plane.status.desired)
        self._step_generation = self.plane.status.generation


def certz(plane: ControlPlane, rotator: RootRotator, *, now: datetime | None = None) -> dict[str, Any]:
    """Per identity its current leaf; the issuer and the roots (with an expiry warning under 60 days); proxies;
    the root rotation."""
    now = now or datetime.now(UTC)
    certs = plane.certs

    def describe(cert: Any, **extra: Any) -> dict[str, Any]:
        s = cert_status(cert, now=now)
        return {
            "serial": s.serial,
            "issuer": s.issuer,
            "not_after": s.not_after.isoformat(),
            "time_left_s": int(s.time_left.total_seconds()),
            "time_left": format_time_left(s.time_left),
            **extra,
        }

    roots = [
        describe(r, subject=r.subject.rfc4514_string(), warning=root_expiry_warning(r, now=now)) for r in certs.bundle
    ]
    acked = {node: p.acked_version for node, p in plane.sync.proxies().items()}
    return {
        "trust_domain": certs.trust_domain,
        "identities": {ident: describe(kp.certificate) for ident, kp in sorted(certs.leaves().items())},
        "issuer": describe(certs.issuer.certificate, subject=certs.issuer.certificate.subject.rfc4514_string()),
        "roots": roots,
        "warnings": [r["warning"] for r in roots if r["warning"]],
        "proxies": {
            node: {"identity": plane.identity_of(node), "in_sync": acked.get(node) == version}
            for node, version in sorted(plane.status.desired.items())
        },
        "rotation": rotator.status(),
    }


__all__ = ["RootRotator", "RotationStepRefused", "certz"]
