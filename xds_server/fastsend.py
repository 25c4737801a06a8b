"""Send one pre-encoded gRPC message on a grpclib server stream with one socket write, without awaiting.

grpclib's ``Stream.send_message`` is built for the general case: it runs the event dispatch, re-encodes through the
codec, copies the message into a ``BytesIO``, goes through h2's ``send_data`` (two state machines, a ``DataFrame``
object and its serializer per frame) and writes every HTTP/2 frame to the transport on its own, awaiting twice per
frame. An ADS push to N proxies is N sends of the same bytes, so that overhead is paid N times.

When nothing could make the send wait or fail (initial metadata sent, the transport accepts writes, the connection
and the stream are open for sending, their flow-control windows hold the whole message, no listener on grpclib's
``SendMessage`` event), :func:`try_send` writes the DATA frames itself — the 9-byte frame header (RFC 9113 §4.1:
length, type 0, no flags, stream id) before each chunk of at most the peer's max frame size — after whatever h2 had
queued, in one transport write, and does the accounting h2 and grpclib do (both flow-control windows, ``data_sent``,
``messages_sent``, keepalive counters). :func:`data_frames` is the framing, checked byte for byte against h2's own
(tests/unit/test_ads_push_paths.py). Otherwise, or if the internals (grpclib 0.4.x, h2 4.x private attributes) are
not as expected, it returns False having written nothing, and the caller uses ``send_message``.
"""

from __future__ import annotations

import time
from typing import Any

from h2.connection import ConnectionState
from h2.stream import StreamState

_SENDING_CONNECTION = frozenset({ConnectionState.SERVER_OPEN, ConnectionState.CLIENT_OPEN})
_SENDING_STREAM = frozenset({StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE})


def data_frames(stream_id: int, data: bytes, max_frame: int) -> bytes:
    """HTTP/2 DATA frames (no flags, no padding) carrying ``data`` on ``stream_id``, each at most ``max_frame``."""
    sid = (stream_id & 0x7FFFFFFF).to_bytes(4, "big")
    if len(data) <= max_frame:
        return len(data).to_bytes(3, "big") + b"\x00\x00" + sid + data
    out = []
    for i in range(0, len(data), max_frame):
        chunk = data[i : i + max_frame]
        out += [len(chunk).to_bytes(3, "big"), b"\x00\x00", sid, chunk]
    return b"".join(out)


def try_send(stream: Any, body: bytes) -> bool:
    """Write ``body`` as one gRPC message now and return True, or return False (nothing written)."""
    try:
        if not stream._send_initial_metadata_done or "send_message" not in vars(stream._dispatch):
            return False
        inner = stream._stream
        conn = inner.connection
        if not conn.write_ready.is_set():
            return False
        h2 = inner._h2_connection
        sid = inner.id
        h2s = h2.streams.get(sid)
        if h2s is None or h2s.state_machine.state not in _SENDING_STREAM:
            return False
        if h2.state_machine.state not in _SENDING_CONNECTION:
            return False
        size = 5 + len(body)  # gRPC message prefix: not compressed, 4-byte length
        if size > h2.outbound_flow_control_window or size > h2s.outbound_flow_control_window:
            return False
        frames = data_frames(sid, b"\x00" + len(body).to_bytes(4, "big") + body, h2.max_outbound_frame_size)
        transport = inner._transport
    except AttributeError:  # pragma: no cover - grpclib's or h2's internals changed
        return False
    h2s.outbound_flow_control_window -= size
    h2.outbound_flow_control_window -= size
    queued = h2.data_to_send()  # frames h2 has queued (window updates, ping acks) go first
    transport.write(queued + frames if queued else frames)
    inner.data_sent += size
    conn.data_sent += size
    conn.data_send_process()
    stream._send_message_done = True
    stream._messages_sent += 1
    conn.messages_sent += 1
    conn.last_message_sent = time.monotonic()
    return True
