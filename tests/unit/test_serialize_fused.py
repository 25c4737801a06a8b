"""The encoder's fused children and its Struct fast path (``xds_server.encode``): children written inside their
parent's encoder, plain string Values written inside their Struct, give exactly the library's ``bytes(msg)``, also
when a value is not what the fast path expects and after a child class gets its first shared instance."""

from __future__ import annotations

from envoy_data_plane.envoy.config.cluster.v3 import Cluster, ClusterEdsClusterConfig
from envoy_data_plane.envoy.config.core.v3 import Address, Metadata, SocketAddress
from envoy_data_plane.envoy.config.endpoint.v3 import ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints
from envoy_data_plane.google.protobuf import ListValue, Struct, Value

from tests.unit import ir_samples as s
from xds_server import encode
from xds_server.serialize import new
from xds_server.translate import clear_caches, translate_proxy


def test_a_load_assignment_writes_its_locality_endpoints_inline_and_gives_the_librarys_bytes() -> None:
    clear_caches()
    res = translate_proxy(s.mesh_of(3, 2))
    source = encode._compile(ClusterLoadAssignment).__doc__ or ""
    assert "d_" in source and "__dict__" in source  # LocalityLbEndpoints' fields are in the parent's code
    for cla in res.cluster_load_assignments:
        assert encode.encode(cla) == bytes(cla)


def test_a_cluster_with_an_empty_and_a_full_fused_child_encodes_to_the_librarys_bytes() -> None:
    for eds in (None, new(ClusterEdsClusterConfig), new(ClusterEdsClusterConfig, service_name="é|80")):
        cluster = new(Cluster, name="c", eds_cluster_config=eds)
        assert encode.encode(cluster) == bytes(cluster)


def test_a_child_class_shared_after_its_parent_was_compiled_is_found_by_identity_and_keeps_the_bytes() -> None:
    clear_caches()
    cla = translate_proxy(s.mesh_of(2, 2)).cluster_load_assignments[0]
    expected = bytes(cla)
    assert encode.encode(cla) == expected
    locality: LocalityLbEndpoints = cla.endpoints[0]
    encode.share(locality)  # LocalityLbEndpoints gets a shared instance: every encoder is compiled again
    assert encode.encode(cla) == expected
    assert encode._SHARED[id(locality)][1] == bytes(locality)  # the parent's call site reached the shared entry
    assert encode.encode(cla) == expected
    clear_caches()


def test_struct_values_other_than_one_plain_string_take_the_values_own_encoder() -> None:
    values = [
        new(Value, string_value=""),
        new(Value, string_value="é" * 200),
        new(Value, number_value=-0.0),
        new(Value, number_value=0.0),
        new(Value, bool_value=False),
        new(Value, null_value=0),  # type: ignore[arg-type]
        new(Value, list_value=new(ListValue, values=[new(Value, string_value="x")])),
        new(Value, struct_value=new(Struct, fields={"k": new(Value, string_value="v")})),
        new(Value),
    ]
    unknown = new(Value, string_value="x")
    unknown._unknown_fields = b"\x38\x01"  # a field this version does not know, kept after the known ones
    values.append(unknown)
    encode.clear_memos()
    for value in values:
        struct = new(Struct, fields={"a": value, "b": new(Value, string_value="plain")})
        assert encode.encode(struct) == bytes(struct)
        meta = new(Metadata, filter_metadata={"meshwork.io": struct})
        assert encode.encode(meta) == bytes(meta)


def test_unknown_fields_of_a_message_its_fused_child_and_a_memoized_child_are_kept_after_their_known_fields() -> None:
    unknown = b"\xb8\x3e\x01"  # field 999, varint 1: no field of these messages
    encode.clear_memos()
    for where in ("message", "fused child", "memoized child", "nowhere"):
        socket = new(SocketAddress, address="10.0.0.1", port_value=8080)
        address = new(Address, socket_address=socket)
        lb = new(LbEndpoint, endpoint=new(Endpoint, address=address))
        cla = new(ClusterLoadAssignment, cluster_name="c", endpoints=[new(LocalityLbEndpoints, lb_endpoints=[lb])])
        target = {"message": cla, "fused child": cla.endpoints[0], "memoized child": socket}.get(where)
        if target is not None:
            target._unknown_fields = unknown
        assert encode.encode(cla) == bytes(cla)
        assert (unknown in encode.encode(cla)) is (target is not None)


def test_map_entries_with_repeated_non_ascii_and_more_distinct_keys_than_the_key_memo_holds_keep_their_bytes() -> None:
    encode.clear_memos()
    keys = ["meshwork.io", "service", "é" * 70, "", *(f"k{i}" for i in range(5000))]  # 5000 > the 4096 memoized
    for round_ in range(2):  # cold, then with the keys' entry heads memoized
        for n, key in enumerate(keys):
            value = new(Value, string_value=f"{key}-{round_}") if n % 3 else new(Value, number_value=n)
            struct = new(Struct, fields={key: value, "service": new(Value, string_value="s" * 130)})
            meta = new(Metadata, filter_metadata={key: struct})
            assert encode.encode(meta) == bytes(meta)
            assert encode.encode(struct) == bytes(struct)
