"""The review of the encoder's content memos (``xds_server._encode_memo``): a class whose memo does not hit is
recompiled without it, one whose memo hits keeps it without counting, and the bytes are the library's
``bytes(msg)`` before, during and after either; a scalar-only ``Any`` (never memoized) is fused into its parent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from envoy_data_plane.envoy.config.core.v3 import SocketAddress, TransportSocket
from envoy_data_plane.envoy.type.v3 import Percent
from envoy_data_plane.google.protobuf import Any as AnyMsg

from xds_server import _encode_memo, encode
from xds_server.serialize import clear_caches, new


@pytest.fixture
def reviewed() -> Iterator[None]:
    """Forget the reviews of the classes used here before and after (they are process-wide)."""

    def forget() -> None:
        for cls in (SocketAddress, Percent):
            _encode_memo.NO_MEMO.discard(cls)
            _encode_memo.KEPT.discard(cls)
            encode._ENCODERS.pop(cls, None)
        clear_caches()

    forget()
    yield
    forget()


def _source(cls: type) -> str:
    """The generated source of ``cls``'s current encoder."""
    return (encode._ENCODERS.get(cls) or encode._compile(cls)).__doc__ or ""


@pytest.mark.usefixtures("reviewed")
def test_a_memo_that_never_hits_is_dropped_after_its_review_and_the_bytes_stay_the_librarys() -> None:
    assert "M.get" in _source(SocketAddress) and "MC[0]" in _source(SocketAddress)
    for i in range(_encode_memo.REVIEW_AT + 10):  # every address distinct: every lookup misses
        addr = new(SocketAddress, address=f"10.0.{i // 250}.{i % 250}", port_value=8000 + i % 7)
        assert encode.encode(addr) == bytes(addr)
    assert SocketAddress in _encode_memo.NO_MEMO
    assert "M.get" not in _source(SocketAddress) and "MC[" not in _source(SocketAddress)
    again = new(SocketAddress, address="10.9.9.9", port_value=1)
    assert encode.encode(again) == bytes(again) == encode.encode(again)


@pytest.mark.usefixtures("reviewed")
def test_a_memo_that_hits_is_kept_without_counting_and_the_bytes_stay_the_librarys() -> None:
    values = [0.0, -0.0, 10.0, 25.5, 100.0]  # -0.0 after 0.0: the key keeps them apart (repr)
    for i in range(5 * _encode_memo.REVIEW_AT):
        pct = new(Percent, value=values[i % len(values)] if i % 4 else float(i))  # 1 in 4 distinct
        assert encode.encode(pct) == bytes(pct)
    assert Percent in _encode_memo.KEPT
    assert "M.get" in _source(Percent) and "MC[" not in _source(Percent)
    for v in values:
        pct = new(Percent, value=v)
        assert encode.encode(pct) == bytes(pct)


def test_an_any_is_written_inside_its_parents_encoder() -> None:
    source = encode._compile(TransportSocket).__doc__ or ""
    assert "d_" in source and "'type_url'" in source  # the Any's fields are in the parent's code
    for payload in (b"", b"\x0a\x01x", bytes(range(256)) * 70):
        ts = new(TransportSocket, name="tls", typed_config=new(AnyMsg, type_url="type.googleapis.com/x", value=payload))
        assert encode.encode(ts) == bytes(ts)
    ts = new(TransportSocket, name="empty", typed_config=new(AnyMsg))
    assert encode.encode(ts) == bytes(ts)
