"""A tiny gRPC server for the GRPCRoute test: every method of grpc.testing.TestService answers with the server's
name (raw bytes, no protobuf needed) and echoes the request metadata it received as trailing metadata."""

from __future__ import annotations

import argparse
from concurrent import futures
from typing import Any

import grpc


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()

    def answer(request: bytes, context: Any) -> bytes:
        seen = [(k, v) for k, v in context.invocation_metadata() if k.startswith("x-")]
        context.set_trailing_metadata(seen)
        return args.name.encode()

    handler = grpc.unary_unary_rpc_method_handler(answer)
    methods = dict.fromkeys(("UnaryCall", "EmptyCall"), handler)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("grpc.testing.TestService", methods),))
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
