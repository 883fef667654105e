"""Bad input and wrong state over gRPC: a clear status with a message, nothing stored."""

import uuid
from collections.abc import Callable

import grpc
import pytest

from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.generated.windowpay.v1 import windowpay_pb2_grpc as pb_grpc
from tests.e2e.conftest import Deployed


def create(window: str, **changes: object) -> pb.CreateOrderRequest:
    request = pb.CreateOrderRequest(
        request_id=uuid.uuid4().hex,
        business_no=f"B-{uuid.uuid4().hex[:10]}",
        window_id=window,
        payer_name="孙七",
        lines=[pb.OrderLine(fee_code="PLT-AUTO", quantity=1)],
    )
    for name, value in changes.items():
        if name == "lines":
            del request.lines[:]
            request.lines.extend(value)  # type: ignore[arg-type]
        else:
            setattr(request, name, value)
    return request


async def status_of(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value.code(), info.value.details() or ""


BAD_CREATES: list[tuple[dict[str, object], str]] = [
    ({"request_id": ""}, "request_id is required"),
    ({"window_id": "NOWHERE"}, "not a window"),
    ({"payer_name": ""}, "payer_name is required"),
    ({"business_no": ""}, "business_no is required"),
    ({"lines": []}, "1 to 20 lines"),
    ({"lines": [pb.OrderLine(fee_code="PLT-GOLD", quantity=1)]}, "unknown fee code"),
    ({"lines": [pb.OrderLine(fee_code="PLT-AUTO", quantity=0)]}, "quantity must be 1 to 10"),
    ({"lines": [pb.OrderLine(fee_code="PLT-AUTO", quantity=-3)]}, "quantity must be 1 to 10"),
    (
        {"lines": [pb.OrderLine(fee_code="PLT-AUTO", quantity=1),
                   pb.OrderLine(fee_code="PLT-AUTO", quantity=1)]},
        "appears twice",
    ),
    ({"lines": [pb.OrderLine(fee_code="PLT-AUTO", quantity=1, amount_fen=1)]}, "differs"),
    ({"lines": [pb.OrderLine(fee_code="PLT-AUTO", quantity=1, unit_price_fen=9000)]}, "differs"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "message"), BAD_CREATES)
async def test_bad_create_is_invalid_argument_and_stores_nothing(
    deployed: Deployed, changes: dict[str, object], message: str
) -> None:
    request = create(deployed.window(), **changes)
    code, details = await status_of(deployed.business.CreateOrder(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in details
    if request.business_no:
        code, _ = await status_of(
            deployed.business.GetOrder(pb.GetOrderRequest(business_no=request.business_no))
        )
        assert code == grpc.StatusCode.NOT_FOUND


async def pay_status(
    deployed: Deployed,
    change: Callable[[pb.PayRequest], None],
    order: pb.Order | None = None,
    caller: str = "",
) -> tuple[grpc.StatusCode, str]:
    """Pay, as the order's terminal unless `caller` names another, after `change`."""
    order = order or await deployed.create(deployed.window())
    request = deployed.pay_request(order, Channel.WECHAT)
    change(request)
    terminal = deployed.terminal_for(caller or deployed.terminal_of(order.window_id))
    return await status_of(terminal.Pay(request, timeout=10))


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        (lambda r: setattr(r, "channel", pb.CHANNEL_UNSPECIFIED), "INVALID_ARGUMENT", "channel"),
        (lambda r: setattr(r, "auth_code", "12345"), "INVALID_ARGUMENT", "18 digits"),
        (lambda r: setattr(r, "auth_code", "280000000000000000"), "INVALID_ARGUMENT", "starting"),
        (lambda r: setattr(r, "cash_received_fen", 5), "INVALID_ARGUMENT", "cash payments only"),
        (lambda r: setattr(r, "request_id", ""), "INVALID_ARGUMENT", "request_id"),
        (lambda r: setattr(r, "order_id", "G1-NOSUCHORDER"), "NOT_FOUND", "not found"),
        (lambda r: setattr(r, "order_id", "ZZ9-NOSUCHORDER"), "NOT_FOUND", "not found"),
        (lambda r: setattr(r, "terminal_id", "T404"), "PERMISSION_DENIED", "not the caller"),
    ],
)
async def test_bad_payments(
    deployed: Deployed, change: Callable[[pb.PayRequest], None], status: str, message: str
) -> None:
    code, details = await pay_status(deployed, change)
    assert code.name == status
    assert message in details


async def test_a_terminal_of_another_window_is_denied(deployed: Deployed) -> None:
    order = await deployed.create(deployed.window())
    other = next(w for w in deployed.config.deployment.window_service_point if w != order.window_id)
    stranger = deployed.terminal_of(other)
    code, details = await pay_status(
        deployed, lambda r: setattr(r, "terminal_id", stranger), order, caller=stranger
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert order.window_id in details
    assert (await deployed.get(order.order_id)).state == pb.AWAITING_PAYMENT


async def test_wrong_states_are_failed_precondition(deployed: Deployed) -> None:
    window = deployed.window()
    paid = await deployed.create(window)
    await deployed.terminal_of_order(paid).Pay(
        deployed.pay_request(paid, Channel.WECHAT), timeout=10
    )
    code, details = await pay_status(deployed, lambda r: None, paid)
    assert (code, "PAID" in details) == (grpc.StatusCode.FAILED_PRECONDITION, True)
    code, _ = await status_of(
        deployed.business.CancelOrder(
            pb.CancelOrderRequest(request_id=uuid.uuid4().hex, order_id=paid.order_id)
        )
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION

    slow = await deployed.create(window)
    other = await deployed.create(window)
    pending = deployed.terminal_of_order(slow).Pay(
        deployed.pay_request(slow, Channel.WECHAT, "2222"), timeout=30
    )
    await asyncio_wait_for_state(deployed, slow.order_id, pb.PAYING)
    code, details = await pay_status(deployed, lambda r: None, other)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "busy" in details
    assert (await pending).attempts[0].state == pb.REVERSED


async def test_an_auth_code_is_refused_the_second_time(deployed: Deployed) -> None:
    declined = await deployed.create(deployed.window())
    request = deployed.pay_request(declined, Channel.ALIPAY, "3333")
    await deployed.terminal_for(request.terminal_id).Pay(request, timeout=10)
    second = await deployed.create(deployed.window())
    again = deployed.pay_request(second, Channel.ALIPAY)
    again.auth_code = request.auth_code
    code, details = await status_of(deployed.terminal_for(again.terminal_id).Pay(again, timeout=10))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "already used" in details


async def test_get_order_needs_a_key_and_finds_nothing_unknown(deployed: Deployed) -> None:
    code, _ = await status_of(
        deployed.stub_as("auditor", pb_grpc.TerminalStub).GetOrder(pb.GetOrderRequest())
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = await status_of(
        deployed.stub_as("auditor", pb_grpc.TerminalStub).GetOrder(
            pb.GetOrderRequest(order_id="G1-NONE")
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND


async def asyncio_wait_for_state(deployed: Deployed, order_id: str, state: int) -> None:
    from tests.support import eventually

    await eventually(lambda: deployed.get(order_id), lambda o: o.state == state)
