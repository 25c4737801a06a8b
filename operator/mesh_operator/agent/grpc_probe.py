"""gRPC health checks (``grpc.health.v1``) for pods that have gRPC probes: loads grpclib only then."""

from __future__ import annotations

import asyncio


def check(port: int, service: str, timeout: float) -> tuple[bool, str]:
    from grpclib.client import Channel
    from grpclib.health.v1.health_grpc import HealthStub
    from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

    async def call() -> tuple[bool, str]:
        channel = Channel("127.0.0.1", port)
        try:
            reply = await asyncio.wait_for(HealthStub(channel).Check(HealthCheckRequest(service=service)), timeout)
        finally:
            channel.close()
        name = HealthCheckResponse.ServingStatus.Name(reply.status)
        return reply.status == HealthCheckResponse.SERVING, name

    try:
        return asyncio.run(call())
    except Exception as err:  # any failure of the probe is a failed probe
        return False, f"{type(err).__name__}: {err}"
