"""AuthenticationPolicy: end-user authentication with JWTs on the inbound side of a service.

Each provider names an issuer, the audiences it accepts, where its keys (JWKS) come from (inline, or a URI Envoy
fetches itself through a cluster the mesh generates and caches for ``cacheDuration``), where the token is read
from, which claims are copied into request headers and whether the token is forwarded to the app.

A request with a token that fails verification (bad signature, expired, wrong issuer or audience, ``alg: none``)
is answered 401. A request without a token passes: to require one, add an AccessPolicy whose ``from`` has
``requestPrincipals``. ``mode: Shadow`` verifies and counts but never refuses; ``mode: Off`` keeps the policy out
of the config.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mesh_operator.api.common import (
    MODE_DESCRIPTION,
    DnsLabel,
    Duration,
    Model,
    ObjectMeta,
    PolicyMode,
    PolicyStatus,
    ServiceRef,
    cel,
)

#: An HTTP header name (RFC 9110 token), as Envoy accepts it.
HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"


class RemoteJwks(Model):
    uri: str = Field(
        min_length=1, max_length=2048, pattern=r"^https?://", description="http:// or https:// URL of the JWKS."
    )
    cache_duration: Duration = Field(default="5m", description="How long Envoy keeps the fetched keys.")
    timeout: Duration = Field(default="1s", description="Timeout of one fetch.")


class Jwks(Model):
    """Exactly one of inline, remote."""

    model_config = cel(("has(self.inline) != has(self.remote)", "set exactly one of inline, remote"))

    inline: str | None = Field(default=None, min_length=1, description='A JSON Web Key Set: {"keys": [...]}.')
    remote: RemoteJwks | None = None


class TokenHeader(Model):
    name: str = Field(min_length=1, max_length=256, pattern=HEADER_NAME_PATTERN)
    prefix: str = Field(default="", max_length=64, description='E.g. "Bearer ": the token follows it.')


class TokenLocation(Model):
    """Where a token is read from. Exactly one field is set."""

    model_config = cel(
        (
            "(has(self.header) ? 1 : 0) + (has(self.queryParam) ? 1 : 0) + (has(self.cookie) ? 1 : 0) == 1",
            "set exactly one of header, queryParam, cookie",
        )
    )

    header: TokenHeader | None = None
    query_param: str | None = Field(default=None, min_length=1, max_length=256)
    cookie: str | None = Field(default=None, min_length=1, max_length=256, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


class ClaimToHeader(Model):
    claim: str = Field(min_length=1, max_length=256, description="A top-level claim of the token's payload.")
    header: str = Field(min_length=1, max_length=256, pattern=HEADER_NAME_PATTERN)


class JwtProvider(Model):
    name: DnsLabel
    issuer: str = Field(min_length=1, max_length=2048, description="The token's iss claim must equal this.")
    audiences: list[str] = Field(
        default_factory=list, max_length=32, description="The token's aud must hold one of these; empty: any."
    )
    jwks: Jwks
    from_: list[TokenLocation] = Field(
        default_factory=list,
        alias="from",
        max_length=8,
        description='Where the token is read from. Empty: the Authorization header with prefix "Bearer ".',
    )
    claims_to_headers: list[ClaimToHeader] = Field(
        default_factory=list,
        max_length=16,
        description="Copied from a verified token; the same headers sent by the caller are always removed first.",
    )
    forward_token: bool = Field(default=False, description="Keep the token in the request the app receives.")


class AuthenticationPolicySpec(Model):
    model_config = cel(
        (
            "self.providers.all(p, self.providers.exists_one(q, q.name == p.name))",
            "providers: names must be unique",
        ),
    )

    target_ref: ServiceRef
    mode: PolicyMode = Field(default="Enforce", description=MODE_DESCRIPTION)
    providers: list[JwtProvider] = Field(min_length=1, max_length=16)


class AuthenticationPolicy(Model):
    api_version: Literal["meshwork.io/v1alpha1"] = "meshwork.io/v1alpha1"
    kind: Literal["AuthenticationPolicy"] = "AuthenticationPolicy"
    metadata: ObjectMeta
    spec: AuthenticationPolicySpec
    status: PolicyStatus | None = None
