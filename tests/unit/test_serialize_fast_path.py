"""The fast serializer in ``xds_server.serialize`` is byte-for-byte the library's ``bytes(msg)``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta

import betterproto2
import pytest
from envoy_data_plane.envoy.config.cluster.v3 import OutlierDetection
from envoy_data_plane.envoy.config.core.v3 import Metadata
from envoy_data_plane.envoy.config.route.v3 import RetryPolicy, RouteAction
from envoy_data_plane.envoy.type.v3 import Percent
from envoy_data_plane.google.protobuf import Any, ListValue, Struct, Value

from tests.unit import ir_samples as s
from xds_server import encode, serialize
from xds_server.translate import clear_caches, snapshot_of, translate_proxy


def _messages(msg: betterproto2.Message) -> Iterator[betterproto2.Message]:
    """``msg`` and every message inside it, Any payloads unpacked."""
    yield msg
    if isinstance(msg, Any):
        inner = msg.unpack()
        if inner is not None:
            yield from _messages(inner)
        return
    for f in dataclasses.fields(msg):  # type: ignore[arg-type]
        value = getattr(msg, f.name)
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, betterproto2.Message):
                yield from _messages(item)


def corpus() -> list[betterproto2.Message]:
    out: list[betterproto2.Message] = []
    for cfg in (s.RICH, s.RICH_TEXT_LOG, s.mesh_of(3, 2)):
        res = translate_proxy(cfg)
        for group in (res.listeners, res.route_configs, res.clusters, res.cluster_load_assignments):
            for top in group:
                out.extend(_messages(top))
    # Edge cases the translation does not produce today.
    out += [
        Struct(
            fields={
                "n": Value(number_value=-1.5),
                "b": Value(bool_value=False),
                "l": Value(list_value=ListValue(values=[Value(string_value="é"), Value(null_value=0)])),  # type: ignore[arg-type]
            }
        ),
        Metadata(filter_metadata={"": Struct()}),
        RetryPolicy(num_retries=0, retriable_status_codes=[0, 1, 300, 2**32 - 1], host_selection_retry_max_attempts=-7),
        RouteAction(timeout=timedelta(0), idle_timeout=timedelta(days=3, microseconds=1), cluster=""),
        OutlierDetection(consecutive_5xx=0),
        Percent(value=0.1),
        Any(type_url="x", value=b"\x00\xff"),
    ]
    return out


CORPUS = corpus()


def test_the_corpus_covers_every_message_type_the_translation_produces() -> None:
    types = {type(m).__name__ for m in CORPUS}
    assert len(CORPUS) > 500
    for name in ("Listener", "HttpConnectionManager", "Rbac", "RouteConfiguration", "Cluster", "UpstreamTlsContext"):
        assert name in types


def test_fast_bytes_equal_the_librarys_bytes_for_every_message_of_the_corpus() -> None:
    mismatched = [type(m).__name__ for m in CORPUS if serialize.encode(m) != bytes(m)]
    assert mismatched == []


def test_fast_bytes_parse_back_to_an_equal_message() -> None:
    for msg in CORPUS[:200]:
        assert type(msg).parse(serialize.encode(msg)) == msg


def test_messages_built_without_validation_equal_validated_ones() -> None:
    kwargs = {"cluster": "c", "timeout": timedelta(seconds=2), "retry_policy": RetryPolicy(retry_on="5xx")}
    fast = serialize.new(RouteAction, **kwargs)  # type: ignore[arg-type]
    slow = RouteAction(**kwargs)  # type: ignore[arg-type]
    assert fast == slow
    assert fast.__dict__ == slow.__dict__
    assert bytes(fast) == bytes(slow)
    # unset repeated / map fields share one empty list / dict that refuses in-place changes (no silent aliasing)
    other = serialize.new(RouteAction)
    assert other.request_mirror_policies is fast.request_mirror_policies == []
    assert other.hash_policy == [] and type(other.hash_policy) is not list
    for change in (
        lambda: other.request_mirror_policies.append(None),
        lambda: other.request_mirror_policies.extend([None]),
        lambda: other.request_mirror_policies.insert(0, None),
        lambda: other.request_mirror_policies.__iadd__([None]),
        lambda: other.request_mirror_policies.__setitem__(slice(None), [None]),
    ):
        with pytest.raises(TypeError, match="assign a new list"):
            change()
    assert fast.request_mirror_policies == [] and RouteAction().request_mirror_policies == []
    mirrors: list[object] = []
    assigned = serialize.new(RouteAction, request_mirror_policies=mirrors)  # type: ignore[arg-type]
    assert assigned.request_mirror_policies is mirrors  # an assigned list is the caller's own
    metadata = serialize.new(Metadata)
    assert metadata.filter_metadata == {} and metadata.filter_metadata is serialize.new(Metadata).filter_metadata
    for change_map in (
        lambda: metadata.filter_metadata.__setitem__("k", Struct()),
        lambda: metadata.filter_metadata.update(k=Struct()),
        lambda: metadata.filter_metadata.setdefault("k", Struct()),
    ):
        with pytest.raises(TypeError, match="assign a new dict"):
            change_map()
    assert metadata.filter_metadata == {} and bytes(metadata) == encode.encode(metadata) == b""


def test_unknown_fields_are_refused_when_building_fast() -> None:
    with pytest.raises(TypeError, match="no field"):
        serialize.new(RouteAction, clusterr="c")  # type: ignore[call-arg]


def test_the_serializer_is_pinned_to_the_betterproto2_version_it_mirrors() -> None:
    assert betterproto2.__version__ == encode._PINNED


def test_proto_json_uses_the_proto_field_names_envoy_expects() -> None:
    doc = serialize.proto_dict(OutlierDetection(consecutive_5xx=3, enforcing_consecutive_5xx=100))
    assert doc == {"consecutive_5xx": 3, "enforcing_consecutive_5xx": 100}


def test_each_message_object_is_serialized_once() -> None:
    clear_caches()
    res = translate_proxy(s.RICH)
    first = snapshot_of(res)
    again = snapshot_of(translate_proxy(s.RICH))
    for type_url, by_name in first.resources.items():
        for name, r in by_name.items():
            assert again.resources[type_url][name] is r
