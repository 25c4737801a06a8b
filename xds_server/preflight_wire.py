"""The pre-flight bootstrap in Envoy's binary form, assembled from the bytes the proxies will receive.

:func:`~xds_server.translate.render_bootstrap` builds the same static bootstrap as proto-JSON from the messages;
converting every new resource to JSON (betterproto's ``to_dict``, ~2 ms per listener or cluster) was most of the
cost of a pre-flight check. Here the snapshot's serialized resources are spliced at the protobuf wire level, so
the bytes Envoy validates are the bytes it will be sent, with only the edits that make them static:

* an ``HttpConnectionManager`` (in a filter chain's ``typed_config``) with ``rds`` gets that route
  configuration's bytes as ``route_config`` instead;
* a cluster of type ``EDS`` becomes ``STATIC`` (the default value, so the field is dropped) with its load
  assignment inline and without ``eds_cluster_config``;
* every ``SdsSecretConfig`` in a listener's or cluster's TLS context loses its ``sds_config`` (which names a
  static secret) and its name is returned, for ``static_resources.secrets``.

Envoy reads a bootstrap file ending in ``.pb`` as a binary ``Bootstrap``. That the result equals
``render_bootstrap``'s document, field for field, is tested on every golden case and example
(``tests/unit/test_preflight_wire.py``). Only known paths are edited; a resource shape that carries RDS, EDS or
SDS somewhere else would differ there, and that test names it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import betterproto2
from envoy_data_plane.envoy.config.bootstrap.v3 import Admin, Bootstrap, BootstrapStaticResources
from envoy_data_plane.envoy.config.cluster.v3 import Cluster, ClusterDiscoveryType, ClusterTransportSocketMatch
from envoy_data_plane.envoy.config.core.v3 import (
    Address,
    DataSource,
    Locality,
    Node,
    SocketAddress,
    TransportSocket,
)
from envoy_data_plane.envoy.config.endpoint.v3 import ClusterLoadAssignment
from envoy_data_plane.envoy.config.listener.v3 import AdditionalAddress, Filter, FilterChain, Listener
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import (
    HttpConnectionManager,
    Rds,
)
from envoy_data_plane.envoy.extensions.transport_sockets.tls.v3 import (
    CertificateValidationContext,
    CommonTlsContext,
    CommonTlsContextCombinedCertificateValidationContext,
    DownstreamTlsContext,
    SdsSecretConfig,
    Secret,
    TlsCertificate,
    UpstreamTlsContext,
)
from envoy_data_plane.google.protobuf import Any as AnyMsg

from xds_server import ir
from xds_server.errors import TranslationError
from xds_server.serialize import encode, type_url_of


def _n(cls: type[betterproto2.Message], name: str) -> int:
    meta: Any = cls._betterproto  # type: ignore[arg-type]
    number: int = meta.meta_by_field_name[name].number
    return number


_LISTENER_NAME: Final = _n(Listener, "name")
_LISTENER_ADDRESS: Final = _n(Listener, "address")
_ADDITIONAL: Final = _n(Listener, "additional_addresses")
_ADDITIONAL_ADDRESS: Final = _n(AdditionalAddress, "address")
_FILTER_CHAINS: Final = _n(Listener, "filter_chains")
_DEFAULT_CHAIN: Final = _n(Listener, "default_filter_chain")
_FILTERS: Final = _n(FilterChain, "filters")
_CHAIN_SOCKET: Final = _n(FilterChain, "transport_socket")
_FILTER_CONFIG: Final = _n(Filter, "typed_config")
_ANY_URL: Final = _n(AnyMsg, "type_url")
_ANY_VALUE: Final = _n(AnyMsg, "value")
_HCM_RDS: Final = _n(HttpConnectionManager, "rds")
_HCM_ROUTE_CONFIG: Final = _n(HttpConnectionManager, "route_config")
_RDS_NAME: Final = _n(Rds, "route_config_name")
_SOCKET_CONFIG: Final = _n(TransportSocket, "typed_config")
_UP_COMMON: Final = _n(UpstreamTlsContext, "common_tls_context")
_DOWN_COMMON: Final = _n(DownstreamTlsContext, "common_tls_context")
_CERT_SDS: Final = _n(CommonTlsContext, "tls_certificate_sds_secret_configs")
_VALIDATION_SDS: Final = _n(CommonTlsContext, "validation_context_sds_secret_config")
_COMBINED: Final = _n(CommonTlsContext, "combined_validation_context")
_COMBINED_SDS: Final = _n(CommonTlsContextCombinedCertificateValidationContext, "validation_context_sds_secret_config")
_SDS_NAME: Final = _n(SdsSecretConfig, "name")
_SDS_SOURCE: Final = _n(SdsSecretConfig, "sds_config")
_CLUSTER_NAME: Final = _n(Cluster, "name")
_CLUSTER_TYPE: Final = _n(Cluster, "type")
_EDS_CONFIG: Final = _n(Cluster, "eds_cluster_config")
_LOAD_ASSIGNMENT: Final = _n(Cluster, "load_assignment")
_CLUSTER_SOCKET: Final = _n(Cluster, "transport_socket")
_SOCKET_MATCHES: Final = _n(Cluster, "transport_socket_matches")
_MATCH_SOCKET: Final = _n(ClusterTransportSocketMatch, "transport_socket")
_STATIC_LISTENERS: Final = _n(BootstrapStaticResources, "listeners")
_STATIC_CLUSTERS: Final = _n(BootstrapStaticResources, "clusters")
_STATIC_SECRETS: Final = _n(BootstrapStaticResources, "secrets")
_STATIC: Final = _n(Bootstrap, "static_resources")
_EDS: Final = int(ClusterDiscoveryType.EDS)
_HCM_URL: Final = type_url_of(HttpConnectionManager())
_TLS_URLS: Final = {type_url_of(UpstreamTlsContext()): _UP_COMMON, type_url_of(DownstreamTlsContext()): _DOWN_COMMON}

#: (number, wire type, start of the field, start of the payload, end)
Field = tuple[int, int, int, int, int]


class WireError(ValueError):
    """Bytes that are not a protobuf message."""


# ---------------------------------------------------------------------- wire format


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf):
            raise WireError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def fields(buf: bytes) -> list[Field]:
    """The top-level fields of a message, in wire order."""
    out: list[Field] = []
    i, end = 0, len(buf)
    while i < end:
        start = i
        tag, i = _varint(buf, i)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == 0:
            value_at = i
            _, i = _varint(buf, i)
            out.append((number, wire, start, value_at, i))
            continue
        if wire == 2:
            size, i = _varint(buf, i)
            payload = i
            i += size
        elif wire == 1:
            payload, i = i, i + 8
        elif wire == 5:
            payload, i = i, i + 4
        else:
            raise WireError(f"wire type {wire} not supported")
        if i > end:
            raise WireError("truncated field")
        out.append((number, wire, start, payload, i))
    return out


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field_bytes(number: int, payload: bytes) -> bytes:
    """One length-delimited field."""
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _string(buf: bytes, number: int) -> str | None:
    found = None
    for n, wire, _, p, e in fields(buf):
        if n == number and wire == 2:
            found = buf[p:e].decode()
    return found


Edit = Callable[[bytes], bytes | None]


def _rewrite(buf: bytes, edits: Mapping[int, Edit], extra: bytes = b"", drop: frozenset[int] = frozenset()) -> bytes:
    """``buf`` with each length-delimited field of a number in ``edits`` replaced by what its edit returns (None:
    the field is dropped), the fields in ``drop`` dropped, ``extra`` appended. Unchanged input is returned as is."""
    parts: list[bytes] = []
    changed = bool(extra)
    for number, wire, start, payload, end in fields(buf):
        if number in drop:
            changed = True
            continue
        edit = edits.get(number) if wire == 2 else None
        if edit is None:
            parts.append(buf[start:end])
            continue
        old = buf[payload:end]
        new = edit(old)
        if new is None:
            changed = True
        elif new is old:
            parts.append(buf[start:end])
        else:
            changed = True
            parts.append(field_bytes(number, new))
    if not changed:
        return buf
    return b"".join(parts) + extra


# ---------------------------------------------------------------------- references


def strings(buf: bytes, depth: int = 0) -> set[bytes]:
    """Every length-delimited payload in the message, recursively (where a payload parses as a message, its own
    payloads too). A superset of its string fields: a name referred to anywhere in the message is in it."""
    out: set[bytes] = set()
    try:
        parsed = fields(buf)
    except WireError:
        return out
    for _, wire, _, p, e in parsed:
        if wire == 2:
            payload = buf[p:e]
            out.add(payload)
            if depth < 64 and payload:
                out |= strings(payload, depth + 1)
    return out


def route_names(listener: bytes) -> set[str]:
    """The route configurations a listener's connection managers take over RDS."""
    found: set[str] = set()

    def hcm(value: bytes) -> None:
        for n, wire, _, p, e in fields(value):
            if n == _HCM_RDS and wire == 2:
                name = _string(value[p:e], _RDS_NAME)
                if name is not None:
                    found.add(name)

    for chain in _payloads(listener, (_FILTER_CHAINS, _DEFAULT_CHAIN)):
        for flt in _payloads(chain, (_FILTERS,)):
            for any_ in _payloads(flt, (_FILTER_CONFIG,)):
                if _string(any_, _ANY_URL) == _HCM_URL:
                    for value in _payloads(any_, (_ANY_VALUE,)):
                        hcm(value)
    return found


def _payloads(buf: bytes, numbers: tuple[int, ...]) -> list[bytes]:
    return [buf[p:e] for n, wire, _, p, e in fields(buf) if n in numbers and wire == 2]


# ---------------------------------------------------------------------- the static edits


class _Statics:
    def __init__(self, routes: Mapping[str, bytes], assignments: Mapping[str, bytes]) -> None:
        self.routes, self.assignments = routes, assignments
        self.secrets: set[str] = set()

    def listener(self, body: bytes) -> bytes:
        return _rewrite(body, {_FILTER_CHAINS: self._chain, _DEFAULT_CHAIN: self._chain})

    def cluster(self, body: bytes) -> bytes:
        parsed = fields(body)
        name = ""
        eds = False
        for n, wire, _, p, e in parsed:
            if n == _CLUSTER_NAME and wire == 2:
                name = body[p:e].decode()
            elif n == _CLUSTER_TYPE and wire == 0:
                eds = _varint(body, p)[0] == _EDS
        edits: dict[int, Edit] = {
            _CLUSTER_SOCKET: self._socket,
            _SOCKET_MATCHES: lambda m: _rewrite(m, {_MATCH_SOCKET: self._socket}),
        }
        if not eds:
            return _rewrite(body, edits)
        cla = self.assignments.get(name)
        if cla is None:
            cla = encode(ClusterLoadAssignment(cluster_name=name))
        drop = frozenset({_CLUSTER_TYPE, _EDS_CONFIG, _LOAD_ASSIGNMENT})
        return _rewrite(body, edits, extra=field_bytes(_LOAD_ASSIGNMENT, cla), drop=drop)

    def _chain(self, chain: bytes) -> bytes:
        return _rewrite(chain, {_FILTERS: self._filter, _CHAIN_SOCKET: self._socket})

    def _filter(self, flt: bytes) -> bytes:
        return _rewrite(flt, {_FILTER_CONFIG: self._any})

    def _any(self, any_: bytes) -> bytes:
        url = _string(any_, _ANY_URL)
        if url == _HCM_URL:
            return _rewrite(any_, {_ANY_VALUE: self._hcm})
        common = _TLS_URLS.get(url or "")
        if common is not None:
            return _rewrite(any_, {_ANY_VALUE: lambda v: _rewrite(v, {common: self._common})})
        return any_

    def _hcm(self, value: bytes) -> bytes:
        extra = b""
        for n, wire, _, p, e in fields(value):
            if n == _HCM_RDS and wire == 2:
                name = _string(value[p:e], _RDS_NAME) or ""
                if name not in self.routes:
                    raise TranslationError(f"listener refers to route configuration {name!r} that is not rendered")
                extra += field_bytes(_HCM_ROUTE_CONFIG, self.routes[name])
        if not extra:
            return value
        return _rewrite(value, {}, extra=extra, drop=frozenset({_HCM_RDS}))

    def _socket(self, socket: bytes) -> bytes:
        return _rewrite(socket, {_SOCKET_CONFIG: self._any})

    def _common(self, common: bytes) -> bytes:
        return _rewrite(
            common,
            {
                _CERT_SDS: self._sds,
                _VALIDATION_SDS: self._sds,
                _COMBINED: lambda c: _rewrite(c, {_COMBINED_SDS: self._sds}),
            },
        )

    def _sds(self, sds: bytes) -> bytes:
        parsed = fields(sds)
        name = _string(sds, _SDS_NAME)
        if name is None or not any(n == _SDS_SOURCE for n, *_ in parsed):
            return sds
        self.secrets.add(name)
        return _rewrite(sds, {}, drop=frozenset({_SDS_SOURCE}))


def static_bootstrap(
    cfg: ir.ProxyConfig,
    listeners: list[bytes],
    clusters: list[bytes],
    routes: Mapping[str, bytes],
    assignments: Mapping[str, bytes],
    material: tuple[str, str, str],
    admin_port: int = 15000,
) -> bytes:
    """The binary ``Bootstrap`` equal to ``render_bootstrap(cfg, ...)`` of these serialized listeners and
    clusters (``routes``: route configuration name -> bytes; ``assignments``: cluster name -> load assignment
    bytes), with the throwaway ``material`` (chain, key, bundle PEM) as its secrets."""
    statics = _Statics(routes, assignments)
    body = b"".join(field_bytes(_STATIC_LISTENERS, statics.listener(x)) for x in listeners)
    body += b"".join(field_bytes(_STATIC_CLUSTERS, statics.cluster(x)) for x in clusters)
    chain, key, bundle = material
    by_name: dict[str, Secret] = {
        cfg.mesh.cert_secret: Secret(
            name=cfg.mesh.cert_secret,
            tls_certificate=TlsCertificate(
                certificate_chain=DataSource(inline_string=chain), private_key=DataSource(inline_string=key)
            ),
        ),
        cfg.mesh.bundle_secret: Secret(
            name=cfg.mesh.bundle_secret,
            validation_context=CertificateValidationContext(trusted_ca=DataSource(inline_string=bundle)),
        ),
    }
    for name in sorted(statics.secrets):
        if name not in by_name:
            raise TranslationError(f"secret {name!r} is referenced but no PEM string or file was given for it")
        body += field_bytes(_STATIC_SECRETS, encode(by_name[name]))
    node = cfg.node
    locality = Locality(region=node.region, zone=node.zone) if node.region or node.zone else None
    head = Bootstrap(
        node=Node(id=node.id, cluster=node.cluster, locality=locality),
        admin=Admin(address=Address(socket_address=SocketAddress(address="127.0.0.1", port_value=admin_port))),
    )
    return encode(head) + field_bytes(_STATIC, body)


def listener_addresses(body: bytes) -> list[bytes]:
    """The bytes of a listener's address and of each of its additional addresses."""
    out = _payloads(body, (_LISTENER_ADDRESS,))
    for extra in _payloads(body, (_ADDITIONAL,)):
        out += _payloads(extra, (_ADDITIONAL_ADDRESS,))
    return out


def listener_name(body: bytes) -> str | None:
    return _string(body, _LISTENER_NAME)


__all__ = ["WireError", "fields", "listener_addresses", "route_names", "static_bootstrap", "strings"]
