"""HTTP routing: matches and actions. Durations are integer milliseconds; percentages are floats 0–100."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xds_server.ir.common import Provenance

MatchKind = Literal["exact", "prefix", "regex", "present"]


@dataclass(frozen=True, slots=True)
class PathMatch:
    #: ``segment_prefix``: whole path segments (Gateway API's PathPrefix: ``/foo`` matches ``/foo/x``, not
    #: ``/foox``); ``prefix``: plain string prefix.
    kind: Literal["exact", "prefix", "regex", "segment_prefix"]
    value: str


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    name: str
    kind: MatchKind
    value: str = ""
    invert: bool = False


@dataclass(frozen=True, slots=True)
class QueryMatch:
    name: str
    kind: Literal["exact", "regex", "present"]
    value: str = ""


@dataclass(frozen=True, slots=True)
class RouteMatch:
    path: PathMatch = PathMatch("prefix", "/")
    method: str | None = None
    headers: tuple[HeaderMatch, ...] = ()
    query: tuple[QueryMatch, ...] = ()


@dataclass(frozen=True, slots=True)
class HashPolicy:
    """What a consistent-hash load balancer hashes on (set on the routes toward a hashing cluster)."""

    kind: Literal["header", "cookie", "source_ip"]
    name: str = ""
    cookie_ttl_ms: int | None = None


@dataclass(frozen=True, slots=True)
class WeightedCluster:
    cluster: str
    weight: int


@dataclass(frozen=True, slots=True)
class Mirror:
    cluster: str
    percent: float


@dataclass(frozen=True, slots=True)
class Fault:
    delay_ms: int | None = None
    delay_percent: float = 0.0
    abort_status: int | None = None
    abort_percent: float = 0.0


@dataclass(frozen=True, slots=True)
class HeaderEdits:
    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.set or self.add or self.remove)


@dataclass(frozen=True, slots=True)
class Redirect:
    scheme: str | None = None
    host: str | None = None
    port: int | None = None
    path: str | None = None
    prefix: str | None = None
    status: int = 302
    #: ``(RE2 pattern, substitution)`` for the path instead of ``path``/``prefix``.
    regex: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Cors:
    """Cross-origin resource sharing, answered by the sidecar. Origins: exact, or with ``*`` wildcards."""

    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age_s: int = 5
    allow_credentials: bool = False


@dataclass(frozen=True, slots=True)
class Retry:
    attempts: int
    retry_on: tuple[str, ...]
    retriable_status_codes: tuple[int, ...] = ()
    per_try_timeout_ms: int | None = None
    backoff_base_ms: int | None = None
    backoff_max_ms: int | None = None
    provenance: Provenance | None = None


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A local token bucket. ``status`` is what a request over the limit gets."""

    max_tokens: int
    tokens_per_fill: int
    fill_interval_ms: int
    status: int = 429
    #: Count the requests over the limit (``rate_limited``) but serve them (``filter_enforced`` 0 %).
    shadow: bool = False


@dataclass(frozen=True, slots=True)
class GlobalDescriptor:
    """One limit of the rate-limit service: ``key`` names it uniquely in the mesh; ``entries`` are what it is
    counted per: ``("header", name)``, ``("source_identity", "")`` or ``("remote_address", "")``."""

    key: str
    requests: int
    unit: Literal["second", "minute", "hour", "day"]
    entries: tuple[tuple[Literal["header", "source_identity", "remote_address"], str], ...] = ()


@dataclass(frozen=True, slots=True)
class GlobalRateLimit:
    """Limits counted by the mesh's rate-limit service, shared by every sidecar enforcing them."""

    descriptors: tuple[GlobalDescriptor, ...]
    failure_deny: bool = False
    timeout_ms: int = 100
    shadow: bool = False
    status: int = 429


@dataclass(frozen=True, slots=True)
class Route:
    """One route. Either ``redirect`` is set or ``clusters`` is non-empty."""

    name: str
    match: RouteMatch
    clusters: tuple[WeightedCluster, ...] = ()
    redirect: Redirect | None = None
    mirrors: tuple[Mirror, ...] = ()
    fault: Fault | None = None
    request_headers: HeaderEdits = HeaderEdits()
    response_headers: HeaderEdits = HeaderEdits()
    path_rewrite: tuple[Literal["full", "prefix"], str] | None = None
    #: ``(RE2 pattern, substitution)`` applied to the path (Gateway API's ReplacePrefixMatch with ``/``).
    path_regex_rewrite: tuple[str, str] | None = None
    host_rewrite: str | None = None
    timeout_ms: int | None = None
    idle_timeout_ms: int | None = None
    retry: Retry | None = None
    rate_limit: RateLimit | None = None
    global_rate_limit: GlobalRateLimit | None = None
    #: Share of requests on this route that start a trace (overrides the mesh's).
    trace_sampling: float | None = None
    hash_on: tuple[HashPolicy, ...] = ()
    provenance: Provenance | None = None
    cors: Cors | None = None
