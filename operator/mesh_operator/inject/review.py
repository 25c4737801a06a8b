"""The admission handler: an AdmissionReview ``request`` -> its AdmissionResponse (``admission.k8s.io/v1``).

Mounted by the operator's admission server at ``/inject``. Pure: no I/O, so the server can call it inline.

* Injected: ``allowed``, ``patchType: JSONPatch``, the base64 patch, and warnings (e.g. a probe left as it is).
* Skipped: ``allowed`` with no patch; ``status.message`` says why (for audit logs); a warning too when injection
  was asked for and not done (a hostNetwork pod).
* A bad ``meshwork.io/*`` annotation or a malformed pod: refused (``allowed: false``, code 400) with the field path.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from mesh_operator.inject.errors import InjectionError
from mesh_operator.inject.patch import diff
from mesh_operator.inject.pod import Injected, inject_pod
from mesh_operator.inject.settings import InjectionSettings


def _skip(uid: str, reason: str, warn: bool = False) -> dict[str, Any]:
    resp: dict[str, Any] = {"uid": uid, "allowed": True, "status": {"message": f"meshwork: not injected: {reason}"}}
    if warn:
        resp["warnings"] = [f"meshwork: not injected: {reason}"]
    return resp


def review(request: dict[str, Any], settings: InjectionSettings) -> dict[str, Any]:
    uid = str(request.get("uid", ""))
    kind = request.get("kind") or {}
    if not isinstance(kind, dict) or kind.get("kind") != "Pod" or request.get("operation", "CREATE") != "CREATE":
        return _skip(uid, "only pod creations are injected")
    pod = request.get("object")
    if not isinstance(pod, dict):
        return {
            "uid": uid,
            "allowed": False,
            "status": {"code": 400, "message": "meshwork: request.object: the pod is missing"},
        }
    namespace = request.get("namespace")
    try:
        result = inject_pod(pod, settings, namespace if isinstance(namespace, str) and namespace else None)
    except InjectionError as exc:
        return {"uid": uid, "allowed": False, "status": {"code": 400, "message": f"meshwork: {exc}"}}
    if not isinstance(result, Injected):
        return _skip(uid, result.reason, result.notable)
    patch = json.dumps(diff(pod, result.pod), separators=(",", ":")).encode()
    resp: dict[str, Any] = {
        "uid": uid,
        "allowed": True,
        "patchType": "JSONPatch",
        "patch": base64.b64encode(patch).decode(),
    }
    if result.warnings:
        resp["warnings"] = [f"meshwork: {w}" for w in result.warnings]
    return resp
