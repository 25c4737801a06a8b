"""AccessPolicy: which identities may call a service, and what they may do.

Once any ``Allow`` rule targets a service, requests no rule allows are denied. ``Deny`` wins over ``Allow``.
``mode: Shadow`` evaluates and counts the rules without enforcing them; ``mode: Off`` keeps the policy out of the
config.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mesh_operator.api.common import (
    MODE_DESCRIPTION,
    VALUE_UNLESS_PRESENT,
    DnsLabel,
    Model,
    ObjectMeta,
    PolicyMode,
    PolicyStatus,
    ServiceRef,
    cel,
)

HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]


class ServiceAccountRef(Model):
    namespace: DnsLabel
    name: DnsLabel


class SpiffeIdMatch(Model):
    model_config = cel(("has(self.exact) != has(self.prefix)", "set exactly one of exact, prefix"))

    exact: str | None = Field(default=None, pattern=r"^spiffe://")
    prefix: str | None = Field(default=None, pattern=r"^spiffe://")


class ClaimCondition(Model):
    """A claim of the verified JWT: equal to one of ``values`` (a list claim: holding one of them)."""

    name: str = Field(min_length=1, max_length=256, description="A top-level claim of the payload.")
    values: list[str] = Field(min_length=1, max_length=32)


class Source(Model):
    """Exactly one of serviceAccount, namespace, spiffeId (the mesh identity of the calling workload), or the
    end user of a JWT verified by an AuthenticationPolicy: requestPrincipals and/or claims (both must hold)."""

    model_config = cel(
        (
            "(has(self.serviceAccount) ? 1 : 0) + (has(self.namespace) ? 1 : 0) + (has(self.spiffeId) ? 1 : 0)"
            " + (has(self.requestPrincipals) || has(self.claims) ? 1 : 0) == 1",
            "set exactly one of serviceAccount, namespace, spiffeId, or requestPrincipals/claims",
        )
    )

    service_account: ServiceAccountRef | None = None
    namespace: DnsLabel | None = None
    spiffe_id: SpiffeIdMatch | None = None
    request_principals: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description=(
            "<issuer>/<subject> of a verified JWT; either part may be *, or start or end with * (a prefix or "
            "suffix match). The subject is what follows the last /. Any one of the list matches."
        ),
    )
    claims: list[ClaimCondition] | None = Field(default=None, min_length=1, max_length=16, description="All must hold.")


class AccessPathMatch(Model):
    type: Literal["Exact", "PathPrefix"] = "PathPrefix"
    value: str = Field(min_length=1, pattern=r"^/")


class AccessHeaderMatch(Model):
    model_config = VALUE_UNLESS_PRESENT

    name: str = Field(min_length=1, max_length=256)
    type: Literal["Exact", "Prefix", "Present"] = "Exact"
    value: str | None = None


class Operation(Model):
    """What a request does. All set fields must match; an empty list matches anything."""

    paths: list[AccessPathMatch] = Field(default_factory=list)
    methods: list[HttpMethod] = Field(default_factory=list, max_length=9)
    headers: list[AccessHeaderMatch] = Field(default_factory=list)
    case_insensitive: bool = Field(default=False, description="Match paths ignoring case.")


class AccessRule(Model):
    name: DnsLabel | None = None
    action: Literal["Allow", "Deny"]
    from_: list[Source] = Field(default_factory=list, alias="from", description="Empty: any mesh identity.")
    to: list[Operation] = Field(default_factory=list, description="Empty: any request.")


class AccessPolicySpec(Model):
    target_ref: ServiceRef
    mode: PolicyMode = Field(default="Enforce", description=MODE_DESCRIPTION)
    rules: list[AccessRule] = Field(min_length=1, max_length=64)


class AccessPolicy(Model):
    api_version: Literal["meshwork.io/v1alpha1"] = "meshwork.io/v1alpha1"
    kind: Literal["AccessPolicy"] = "AccessPolicy"
    metadata: ObjectMeta
    spec: AccessPolicySpec
    status: PolicyStatus | None = None
