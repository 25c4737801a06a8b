"""Send one pre-encoded gRPC message on a grpclib server stream with one socket write, without awaiting.

grpclib's ``Stream.send_message`` is built for the general case: it runs the event dispatch, re-encodes through the
codec, copies the message into a ``BytesIO`` and writes every HTTP/2 frame to the transport on its own, awaiting
twice per frame. An ADS push to N proxies is N such sends of the same bytes, so that overhead is paid N times. When
nothing could make the send wait (initial metadata sent, the transport accepts writes, the stream's and the
connection's flow-control windows hold the whole message, no listener on grpclib's ``SendMessage`` event), this
queues every DATA frame in the h2 connection and hands them to the transport in one write, doing the same
bookkeeping grpclib does (``data_sent``, ``messages_sent``, keepalive counters). Otherwise, or if grpclib's
internals are not as expected (private attributes of grpclib 0.4.x), the caller falls back to ``send_message``.
"""

from __future__ import annotations

import time
from typing import Any

from h2.exceptions import H2Error

_PREFIX_UNCOMPRESSED = b"\x00"


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
        data = _PREFIX_UNCOMPRESSED + len(body).to_bytes(4, "big") + body
        size = len(data)
        if size > h2.local_flow_control_window(sid):  # the stream's and the connection's window
            return False
        frame = h2.max_outbound_frame_size
        transport = inner._transport
    except AttributeError:  # pragma: no cover - grpclib's internals changed
        return False
    try:
        h2.send_data(sid, data[:frame])  # raises (queuing nothing) on a closed stream: grpclib's path reports it
    except H2Error:
        return False
    for i in range(frame, size, frame):
        h2.send_data(sid, data[i : i + frame])
    transport.write(h2.data_to_send())
    inner.data_sent += size
    conn.data_sent += size
    conn.data_send_process()
    stream._send_message_done = True
    stream._messages_sent += 1
    conn.messages_sent += 1
    conn.last_message_sent = time.monotonic()
    return True
