"""The service around the API: health, reflection, and the `windowpay pos` simulator."""

import asyncio
import os
import sys

from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.e2e.conftest import Deployed


async def test_health_reports_serving(deployed: Deployed) -> None:
    stub = deployed.stub_as("monitor", health_pb2_grpc.HealthStub)
    for service in ("", "windowpay.v1.Terminal", "windowpay.v1.BusinessGateway"):
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_both_services(deployed: Deployed) -> None:
    stub = deployed.stub_as("monitor", reflection_pb2_grpc.ServerReflectionStub)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for answer in stub.ServerReflectionInfo(iter([request]), timeout=5):
        services = {s.name for s in answer.list_services_response.service}
        break
    assert {
        "windowpay.v1.Terminal",
        "windowpay.v1.BusinessGateway",
        "grpc.health.v1.Health",
    } <= services


async def windowpay(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL, env={**os.environ, **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_newcomer_creates_and_pays_with_the_pos_simulator(deployed: Deployed) -> None:
    window = deployed.window()
    terminal = deployed.terminal_of(window)
    # As in the README: the address and the certificates come from run.json.
    target = ("pos", "--data-dir", str(deployed.data_dir))
    code, out, err = await windowpay(
        *target, "create", "--window", window, "--fee", "PLT-AUTO", "--fee", "DOC-VLIC:2"
    )
    assert code == 0, err
    assert "AWAITING_PAYMENT" in out and "120.00 yuan" in out
    code, out, err = await windowpay(
        *target, "pay", "--terminal", terminal, "--channel", "alipay", "--code", "1111"
    )
    assert code == 0, err
    assert "PAID" in out and "ALIPAY SUCCEEDED" in out
    order_id = out.split()[1]
    sp = deployed.config.deployment.window_service_point[window]
    supervisor = next(s for s, p in deployed.config.access.supervisors.items() if p == sp)
    refund = (*target, "refund", order_id, "--terminal", terminal, "--amount", "2000",
              "--supervisor", supervisor)  # fmt: skip
    # never on the command line, where any process list shows it
    code, out, err = await windowpay(*refund, "--pin", deployed.pins[supervisor])
    assert code == 2 and "never given on the command line" in err
    code, out, err = await windowpay(
        *refund, env={"WINDOWPAY_SUPERVISOR_PIN": deployed.pins[supervisor]}
    )
    assert code == 0, err
    assert "PARTIALLY_REFUNDED" in out and "refund" in out and "20.00 REFUND_SUCCEEDED" in out
    code, out, err = await windowpay(*target, "pay", "--terminal", terminal, "--order", "G1-NOPE")
    assert code == 1 and "NOT_FOUND" in err


async def test_pos_help_explains_the_behaviour_codes() -> None:
    code, out, _ = await windowpay("pos", "pay", "--help")
    assert code == 0 and "last 4 digits" in out
    assert pb.Order  # the simulator speaks the same contract
