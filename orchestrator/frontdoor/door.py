"""What every service of the front door shares: routing to the actors, the order reads
(`OrderReads`: Redis, and the record behind it), the event feed, and turning domain
errors into gRPC statuses."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NoReturn

import grpc

from orchestrator.access.caller import caller
from orchestrator.access.supervisors import Supervisors
from orchestrator.config import Config
from orchestrator.domain.commands import CancelOrder, Command, CreateOrder, Rejected, Result
from orchestrator.domain.errors import DomainError, PermissionDenied
from orchestrator.domain.principals import Role
from orchestrator.domain.validation import check_id, scoped_request_id
from orchestrator.frontdoor.convert import STATUS, order_message
from orchestrator.frontdoor.events import EventHub
from orchestrator.frontdoor.router import Router
from orchestrator.frontdoor.snapshot import OrderView
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.store.outbox import Subscriptions
from orchestrator.store.reads import OrderReads

Context = grpc.aio.ServicerContext[Any, Any]


async def abort(context: Context, code: grpc.StatusCode, message: str) -> NoReturn:
    """context.abort raises; this says so to the type checker."""
    await context.abort(code, message)
    raise AssertionError("unreachable: abort raises")


class FrontDoor:
    """What every service shares: routing, reads, and the event feed."""

    def __init__(
        self,
        config: Config,
        reads: OrderReads,
        subscriptions: Subscriptions,
        router: Router,
        hub: EventHub,
        supervisors: Supervisors,
    ) -> None:
        self.config = config
        self.reads = reads
        self.subscriptions = subscriptions
        self.router = router
        self.hub = hub
        self.supervisors = supervisors

    async def call(self, context: Context, sp: str, command: Command) -> Result:
        """The command's request id becomes the caller's own: another principal sending
        the same id neither replays nor blocks it (the same principal replays)."""
        principal = caller()
        if principal is not None:
            scoped = scoped_request_id(principal.name, command.request_id)
            command = replace(command, request_id=scoped)
            if isinstance(command, CreateOrder) and principal.role is Role.BUSINESS:
                command = replace(command, created_by=principal.name)
            if isinstance(command, CancelOrder):
                command = replace(command, cancelled_by=f"principal: {principal.name}")
        result = await self.router.call(sp, command)
        if isinstance(result, Rejected):
            await abort(context, STATUS[result.code], result.message)
        return result

    def in_reach(self, created_by: str) -> bool:
        """Whether the caller may see an order (or its receipt) that `created_by` made: a
        business principal only what it created, or what was made before orders recorded
        their creator (""); every other role as the access table allows."""
        principal = caller()
        if principal is None or principal.role is not Role.BUSINESS:
            return True
        return not created_by or created_by == principal.name

    def sp_of_order(self, order_id: str) -> str:
        check_id(order_id, "order_id")
        return self.router.route(order_id)

    def window_of_terminal(self, terminal_id: str) -> str:
        window = self.config.deployment.terminal_window.get(terminal_id)
        if window is None:
            raise PermissionDenied(f"terminal {terminal_id!r} is not registered")
        return window

    async def get_order(self, request: pb.GetOrderRequest, context: Context) -> pb.Order:
        key = request.WhichOneof("key")
        try:
            check_id(request.order_id or request.business_no, key or "order_id")
        except DomainError as error:
            await guard(context, error)
        if key == "order_id":
            snapshot = await self.reads.order(request.order_id)
            what = f"order {request.order_id}"
        elif key == "business_no":
            snapshot = await self.reads.order_of_case(request.business_no)
            what = f"no order for business case {request.business_no}"
        else:
            await abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, "order_id or business_no is required"
            )
        view = None if snapshot is None else OrderView.decode(snapshot)
        if view is None or not self.in_reach(view.created_by):  # another's: as if absent
            await abort(context, grpc.StatusCode.NOT_FOUND, f"{what} not found")
        return order_message(view)


async def guard(context: Context, error: DomainError) -> NoReturn:
    await abort(context, STATUS[error.code], error.message)
