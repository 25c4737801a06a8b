"""The hand-written envelopes agree with envoy-data-plane's own encoding and decoding."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xds_server import wire
from xds_server.snapshot import CLUSTER, CachedResource
from xds_server.testing.resources import eds_cluster

disc = wire.envoy_module("envoy.service.discovery.v3")
core = wire.envoy_module("envoy.config.core.v3")
rpc = wire.envoy_module("google.rpc")
Cluster = wire.message_class(CLUSTER)

names = st.lists(st.text(min_size=1, max_size=20), max_size=5)
text = st.text(max_size=30)


def test_field_numbers_match_the_proto_definitions():
    def numbers(cls: type) -> dict[str, int]:
        meta = cls._betterproto  # type: ignore[attr-defined]
        return {n: m.number for n, m in meta.meta_by_field_name.items()}

    assert {"version_info": 1, "resources": 2, "type_url": 4, "nonce": 5}.items() <= numbers(
        disc.DiscoveryResponse
    ).items()
    assert {"system_version_info": 1, "resources": 2, "type_url": 4, "nonce": 5, "removed_resources": 6}.items() <= (
        numbers(disc.DeltaDiscoveryResponse).items()
    )
    assert {"version": 1, "resource": 2, "name": 3}.items() <= numbers(disc.Resource).items()
    assert {
        "version_info": 1,
        "node": 2,
        "resource_names": 3,
        "type_url": 4,
        "response_nonce": 5,
        "error_detail": 6,
    }.items() <= numbers(disc.DiscoveryRequest).items()
    assert {
        "node": 1,
        "type_url": 2,
        "resource_names_subscribe": 3,
        "resource_names_unsubscribe": 4,
        "initial_resource_versions": 5,
        "response_nonce": 6,
        "error_detail": 7,
    }.items() <= numbers(disc.DeltaDiscoveryRequest).items()


@settings(max_examples=50, deadline=None)
@given(version=text, nonce=text, cluster_names=st.lists(st.text(min_size=1, max_size=10), max_size=4, unique=True))
def test_a_hand_encoded_discovery_response_decodes_to_the_same_message(version, nonce, cluster_names):
    resources = [eds_cluster(n) for n in cluster_names]
    data = wire.discovery_response(version, CLUSTER, nonce, b"".join(wire.sotw_entry(r) for r in resources))
    msg = disc.DiscoveryResponse.parse(data)
    assert (msg.version_info, msg.type_url, msg.nonce) == (version, CLUSTER, nonce)
    assert [a.type_url for a in msg.resources] == [CLUSTER] * len(resources)
    assert [Cluster.parse(a.value).name for a in msg.resources] == cluster_names
    assert [a.value for a in msg.resources] == [r.body for r in resources]


@settings(max_examples=50, deadline=None)
@given(version=text, nonce=text, removed=names, cluster_names=st.lists(st.text(min_size=1, max_size=10), max_size=4))
def test_a_hand_encoded_delta_response_decodes_to_the_same_message(version, nonce, removed, cluster_names):
    resources = [eds_cluster(n) for n in cluster_names]
    entries = b"".join(wire.delta_entry(r) for r in resources)
    data = wire.delta_discovery_response(version, CLUSTER, nonce, entries, removed)
    msg = disc.DeltaDiscoveryResponse.parse(data)
    assert (msg.system_version_info, msg.type_url, msg.nonce) == (version, CLUSTER, nonce)
    assert list(msg.removed_resources) == removed
    assert [(r.name, r.version, r.resource.value) for r in msg.resources] == [
        (r.name, r.version, r.body) for r in resources
    ]
    header = wire.decode_response_header(data, delta=True)
    assert (header.nonce, header.names, header.removed) == (nonce, cluster_names, removed)


@settings(max_examples=50, deadline=None)
@given(
    version=text, node=text, rnames=names, nonce=text, error=st.none() | text, type_url=st.sampled_from([CLUSTER, ""])
)
def test_discovery_requests_are_decoded_like_the_library_encodes_them(version, node, rnames, nonce, error, type_url):
    msg = disc.DiscoveryRequest(
        version_info=version,
        node=core.Node(id=node, cluster="c") if node else None,
        resource_names=rnames,
        type_url=type_url,
        response_nonce=nonce,
        error_detail=rpc.Status(code=13, message=error) if error is not None else None,
    )
    req = wire.decode_discovery_request(bytes(msg))
    assert (req.version_info, req.resource_names, req.type_url, req.response_nonce) == (
        version,
        rnames,
        type_url,
        nonce,
    )
    assert (req.node.id if req.node else "") == node
    assert req.is_nack == (error is not None)
    assert req.error == (error or "")


@settings(max_examples=50, deadline=None)
@given(sub=names, unsub=names, initial=st.dictionaries(st.text(max_size=10), text, max_size=3), nonce=text)
def test_delta_requests_are_decoded_like_the_library_encodes_them(sub, unsub, initial, nonce):
    msg = disc.DeltaDiscoveryRequest(
        node=core.Node(id="n"),
        type_url=CLUSTER,
        resource_names_subscribe=sub,
        resource_names_unsubscribe=unsub,
        initial_resource_versions=initial,
        response_nonce=nonce,
    )
    req = wire.decode_delta_request(bytes(msg))
    assert (req.subscribe, req.unsubscribe, req.initial_versions, req.response_nonce) == (sub, unsub, initial, nonce)
    assert req.node is not None
    assert req.node.id == "n"
    assert not req.is_nack


def test_set_version_of_a_whole_type_is_the_snapshot_type_version():
    from xds_server.snapshot import Snapshot

    snap = Snapshot.from_resources([eds_cluster("a"), eds_cluster("b")])
    assert wire.set_version(snap.of_type(CLUSTER)) == snap.type_version(CLUSTER)
    assert wire.PreparedSnapshot(snap).type_version(CLUSTER) == snap.type_version(CLUSTER)


def test_prepared_snapshot_memoizes_only_its_own_resources():
    from xds_server.snapshot import Snapshot

    a = eds_cluster("a")
    p = wire.PreparedSnapshot(Snapshot.from_resources([a]))
    assert p.sotw_entry(a) is p.sotw_entry(a)
    stranger = CachedResource.of(CLUSTER, "a", b"\n\x01a")
    assert p.sotw_entry(stranger) == wire.sotw_entry(stranger)
    assert p.sotw_all(CLUSTER) == wire.sotw_entry(a)


def test_truncated_input_raises_wire_error():
    import pytest

    with pytest.raises(wire.WireError):
        wire.decode_discovery_request(b"\x0a\x05ab")
