"""Naming the policy of a shadowed global rate limit on exactly the requests it would have refused.

Envoy's ``ratelimit`` filter in shadow (``filter_enforced`` 0 %) serves a request the service answered OVER_LIMIT
and adds ``x-envoy-ratelimited: true`` to its *response*; it sets nothing on the request and has no "headers when
not enforced" option. That response header is the only per-request trace, so the shadow block of the inbound chain
turns it into dynamic metadata the access log reads, and keeps it from the caller (a shadow must not be visible):

1. ``meshwork.global_rate_limit_shadow.restore`` (``header_mutation``): puts back an ``x-envoy-ratelimited`` the
   *app* (or a local reply of an earlier filter) had set, from :data:`UPSTREAM_KEY`; nothing when it had none.
2. per shadowed stage, ``meshwork.global_rate_limit_shadow.name.stage<N>`` (``header_to_metadata``) directly
   before its ``ratelimit`` filter: when that filter added ``x-envoy-ratelimited``, sets
   ``meshwork.global_rate_limit_shadow:policy`` to the policy (``Kind/namespace/name``) and removes the header.
3. ``meshwork.global_rate_limit_shadow.stash`` (``header_to_metadata``), last before the router: moves an
   ``x-envoy-ratelimited`` already on the response (from the app) to :data:`UPSTREAM_KEY`, so step 2 only ever sees
   the header its own ``ratelimit`` filter added.

Responses are encoded in reverse filter order (stash, ratelimit, name, restore), so this holds per request. The
policy is named without its generation: the value lives in the listener, and a generation would make every edit
of the policy a listener update.
"""

from __future__ import annotations

from typing import Final

from envoy_data_plane.envoy.config.common.mutation_rules.v3 import HeaderMutation as HeaderMutationRule
from envoy_data_plane.envoy.config.core.v3 import HeaderValue, HeaderValueOption, HeaderValueOptionHeaderAppendAction
from envoy_data_plane.envoy.extensions.filters.http.header_mutation.v3 import HeaderMutation, Mutations
from envoy_data_plane.envoy.extensions.filters.http.header_to_metadata.v3 import (
    Config,
    ConfigKeyValuePair,
    ConfigRule,
)
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import HttpFilter

from xds_server.serialize import new
from xds_server.translate._common import pack

FILTER_PREFIX: Final = "meshwork.global_rate_limit_shadow"
#: Dynamic metadata namespace of the block; the access log reads ``<NAMESPACE>:<POLICY_KEY>``.
NAMESPACE: Final = "meshwork.global_rate_limit_shadow"
POLICY_KEY: Final = "policy"
UPSTREAM_KEY: Final = "upstream_x_envoy_ratelimited"
HEADER: Final = "x-envoy-ratelimited"


def _to_metadata(name: str, key: str, value: str = "") -> HttpFilter:
    """A response rule: when :data:`HEADER` is present, ``NAMESPACE:key`` = ``value`` (or the header's value), and
    the header is removed."""
    rule = new(
        ConfigRule,
        header=HEADER,
        on_header_present=new(ConfigKeyValuePair, metadata_namespace=NAMESPACE, key=key, value=value),
        remove=True,
    )
    return new(HttpFilter, name=name, typed_config=pack(new(Config, response_rules=[rule])))


def namer(stage: int, policy: str) -> HttpFilter:
    """Step 2: directly before the shadowed ``ratelimit`` filter of ``stage``."""
    return _to_metadata(f"{FILTER_PREFIX}.name.stage{stage}", POLICY_KEY, policy)


def stash() -> HttpFilter:
    """Step 3: after every shadowed ``ratelimit`` filter, before the router."""
    return _to_metadata(f"{FILTER_PREFIX}.stash", UPSTREAM_KEY)


def restore() -> HttpFilter:
    """Step 1: before the shadow block; an empty value (no stashed header) adds nothing."""
    put_back = new(
        HeaderValueOption,
        header=new(HeaderValue, key=HEADER, value=f"%DYNAMIC_METADATA({NAMESPACE}:{UPSTREAM_KEY})%"),
        append_action=HeaderValueOptionHeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
        keep_empty_value=False,
    )
    mutations = new(Mutations, response_mutations=[new(HeaderMutationRule, append=put_back)])
    return new(HttpFilter, name=f"{FILTER_PREFIX}.restore", typed_config=pack(new(HeaderMutation, mutations=mutations)))
