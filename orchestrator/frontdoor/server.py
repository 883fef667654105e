"""The gRPC server: both services, the standard health service and reflection."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from orchestrator.access.setup import FrontDoorAccess
from orchestrator.frontdoor.backoffice import BackOfficeServicer, ReceiptsServicer
from orchestrator.frontdoor.door import FrontDoor
from orchestrator.frontdoor.servicers import BusinessGatewayServicer, TerminalServicer
from orchestrator.frontdoor.telemetry import MetricsInterceptor
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.generated.windowpay.v1 import windowpay_pb2_grpc as pb_grpc

SERVICES = tuple(service.full_name for service in pb.DESCRIPTOR.services_by_name.values())


class FrontDoorServer:
    def __init__(self, door: FrontDoor, host: str, port: int, access: FrontDoorAccess) -> None:
        limits = door.config.access.limits
        self.door = door  # the console sends its commands through the same router
        self.access = access
        self.server = grpc.aio.server(
            interceptors=[MetricsInterceptor(), access.interceptor],
            options=[
                ("grpc.so_reuseport", 1),
                ("grpc.max_concurrent_streams", 1000),
                ("grpc.max_receive_message_length", limits.max_request_bytes),
            ],
        )
        pb_grpc.add_BusinessGatewayServicer_to_server(BusinessGatewayServicer(door), self.server)
        pb_grpc.add_TerminalServicer_to_server(TerminalServicer(door), self.server)
        pb_grpc.add_ReceiptsServicer_to_server(ReceiptsServicer(door), self.server)
        pb_grpc.add_BackOfficeServicer_to_server(BackOfficeServicer(door), self.server)
        self.health = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        # TLS only, client certificates required: there is no plaintext gRPC port.
        self.port = self.server.add_secure_port(f"{host}:{port}", access.tls.credentials())
        self.address = f"{host}:{self.port}"
        self.metrics_address = ""
        self._revocations: asyncio.Task[None] | None = None  # the list's watcher

    async def start(self) -> None:
        await self.server.start()
        self._revocations = asyncio.create_task(self.access.watch_revocations())

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *SERVICES):
            await self.health.set(name, status)

    async def stop(self, grace: float = 5.0) -> None:
        await self.set_serving(False)
        if self._revocations is not None:
            self._revocations.cancel()
            await asyncio.gather(self._revocations, return_exceptions=True)
        await self.server.stop(grace)
