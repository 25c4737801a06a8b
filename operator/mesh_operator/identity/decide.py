"""Pure decisions: a verified TokenReview and the bound Pod -> the pod's identity, or why it is refused.

The token proves nothing by itself: the API server checks its signature, expiry, audience and that the object it
is bound to still exists (TokenReview); then the pod it names must exist *now*, be the very pod (same UID) and run
under the token's service account. Only then is a certificate of ``spiffe://<td>/ns/<ns>/sa/<sa>`` signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

POD_NAME_KEY: Final = "authentication.kubernetes.io/pod-name"
POD_UID_KEY: Final = "authentication.kubernetes.io/pod-uid"
SA_PREFIX: Final = "system:serviceaccount:"


@dataclass(frozen=True, slots=True)
class PodIdentity:
    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str

    def spiffe_id(self, trust_domain: str) -> str:
        return f"spiffe://{trust_domain}/ns/{self.namespace}/sa/{self.service_account}"


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str


def _one(extra: Mapping[str, Any], key: str) -> str | None:
    values = extra.get(key) or []
    return values[0] if isinstance(values, list) and len(values) == 1 and isinstance(values[0], str) else None


def identity_from_review(status: Mapping[str, Any], audience: str) -> PodIdentity | Refusal:
    """The identity a TokenReview ``status`` vouches for (the review was made with ``audiences: [audience]``)."""
    if not status.get("authenticated"):
        return Refusal(f"the API server did not accept the token: {status.get('error') or 'not authenticated'}")
    if audience not in (status.get("audiences") or []):
        return Refusal(f"the token is not for audience {audience!r}")
    user = status.get("user") or {}
    username = str(user.get("username") or "")
    if not username.startswith(SA_PREFIX) or username.count(":") != 3:
        return Refusal(f"{username or 'the token'} is not a service account")
    namespace, service_account = username[len(SA_PREFIX) :].split(":")
    extra = user.get("extra") or {}
    pod_name, pod_uid = _one(extra, POD_NAME_KEY), _one(extra, POD_UID_KEY)
    if pod_name is None or pod_uid is None:
        return Refusal("the token is not bound to a pod (use the projected token the injector mounts)")
    return PodIdentity(namespace, service_account, pod_name, pod_uid)


def check_pod(
    identity: PodIdentity, pod: Mapping[str, Any] | None, claimed_namespace: str, claimed_pod: str
) -> Refusal | None:
    """None when ``pod`` (fetched by the token's namespace/name) is the pod asking, under the token's account."""
    where = f"{identity.namespace}/{identity.pod_name}"
    if (claimed_namespace, claimed_pod) != (identity.namespace, identity.pod_name):
        return Refusal(f"the token belongs to pod {where}, not {claimed_namespace}/{claimed_pod}")
    if pod is None:
        return Refusal(f"pod {where} does not exist")
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    if meta.get("uid") != identity.pod_uid:
        return Refusal(f"pod {where} is not the pod the token was issued to (its UID differs)")
    if meta.get("deletionTimestamp"):
        return Refusal(f"pod {where} is being deleted")
    account = spec.get("serviceAccountName") or "default"
    if account != identity.service_account:
        return Refusal(f"pod {where} runs as service account {account}, not {identity.service_account}")
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return Refusal(f"pod {where} has terminated")
    return None
