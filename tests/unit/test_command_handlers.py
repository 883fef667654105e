"""Each command type has one handler of its own (servicepoint/handlers.py): the core
looks a command's handler up by the command's type, so a command type added to
`Command` without a handler would fail at its first batch; this fails first."""

from __future__ import annotations

from typing import get_args

from orchestrator.domain.commands import (
    CancelOrder,
    Command,
    CreateOrder,
    Pay,
    RefundOrder,
    SettleLateSuccess,
)
from orchestrator.domain.states import Channel
from orchestrator.providers.engine import SystemClock
from orchestrator.servicepoint.group_commit import GroupCommit
from orchestrator.servicepoint.handlers import (
    CancelOrderHandler,
    CommandHandlers,
    CreateOrderHandler,
    PayHandler,
    RefundOrderHandler,
    SettleLateSuccessHandler,
)
from orchestrator.servicepoint.observer import MetricsObserver
from orchestrator.servicepoint.orders import OrderBook
from orchestrator.store.write_batch import WriteBatch
from tests.support import small_config

# Written out by hand, not read from the registry it checks.
EXPECTED = {
    CreateOrder: CreateOrderHandler,
    Pay: PayHandler,
    CancelOrder: CancelOrderHandler,
    RefundOrder: RefundOrderHandler,
    SettleLateSuccess: SettleLateSuccessHandler,
}
ONE_OF_EACH: list[Command] = [
    CreateOrder("R1", "B1", "E1W1", "张三", ()),
    Pay("R2", "E1T1", "E1W1", "E1-A", Channel.CASH, "", 100),
    CancelOrder("R3", "E1-A", "withdrawn"),
    RefundOrder("R4", "E1T1", "E1W1", "E1-A", 100, "overpaid", "S1"),
    SettleLateSuccess("R5", "E1-A", "AP1", "T1", "bill"),
]


async def _flush(batch: WriteBatch) -> None:
    raise AssertionError("nothing is committed here")


def test_every_command_type_has_its_own_handler() -> None:
    config = small_config(service_points=1, windows=1)
    book = OrderBook(GroupCommit(_flush, print), config.settings.zone, 1000)
    handlers = CommandHandlers(config, book, SystemClock(), MetricsObserver(), ["E1"])
    assert set(get_args(Command)) == set(EXPECTED) == {type(c) for c in ONE_OF_EACH}
    found = [handlers.of(command) for command in ONE_OF_EACH]
    assert [type(handler) for handler in found] == [EXPECTED[type(c)] for c in ONE_OF_EACH]
    assert len({id(handler) for handler in found}) == len(found)
    assert [handlers.of(command) for command in ONE_OF_EACH] == found  # made once
