"""A GRPCRoute on a Service, on a real local mesh: real Envoy sidecars carrying real gRPC (HTTP/2) calls. Calls are
routed by gRPC service/method to another Service, with the route's header modifier applied."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
import pytest

from mesh_operator.testing.localmesh import LocalMeshBuilder, eventually

pytestmark = pytest.mark.envoy

APP = Path(__file__).with_name("grpc_app.py")
ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc-front, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: grpc-front}]
  rules:
    - matches: [{method: {service: grpc.testing.TestService, method: UnaryCall}}]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: {set: [{name: x-routed, value: unary}]}
      backendRefs: [{name: grpc-v2, port: 80}]
    - backendRefs: [{name: grpc-front, port: 80}]
"""


def _grpc_service(mesh: LocalMeshBuilder, name: str) -> None:
    mesh.service(name, protocol="HTTP2")
    instance = mesh.services[-1]["instances"][0]
    port = mesh.workloads[instance["name"]].app_port
    instance["command"] = [sys.executable, str(APP), "--name", instance["name"], "--port", str(port)]


def test_a_grpcroute_sends_one_method_to_another_service_and_the_rest_to_the_parent(tmp_path: Path) -> None:
    mesh = LocalMeshBuilder(tmp_path)
    _grpc_service(mesh, "grpc-front")
    _grpc_service(mesh, "grpc-v2")
    mesh.client("caller", upstreams=["grpc-front"])
    mesh.policy(ROUTE)
    with mesh.run() as m, grpc.insecure_channel(m.url("caller", "grpc-front", "").removeprefix("http://")) as channel:
        unary = channel.unary_unary("/grpc.testing.TestService/UnaryCall")
        empty = channel.unary_unary("/grpc.testing.TestService/EmptyCall")

        def call(stub: grpc.UnaryUnaryMultiCallable) -> tuple[bytes, dict[str, str]]:
            body, info = stub.with_call(b"ping", timeout=5)
            return body, dict(info.trailing_metadata() or ())

        body, seen = eventually(lambda: call(unary), timeout=20)
        assert body == b"grpc-v2-1"
        assert seen.get("x-routed") == "unary"
        body, seen = call(empty)
        assert body == b"grpc-front-1"
        assert "x-routed" not in seen
        assert {call(unary)[0] for _ in range(10)} == {b"grpc-v2-1"}
