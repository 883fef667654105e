"""What the console changes goes through windowpay's own command path: the same
domain command the business system's CancelOrder sends to the service point's actor."""

from __future__ import annotations

import uuid

from orchestrator.console.labels import Refusal
from orchestrator.domain.commands import CancelOrder, Rejected
from orchestrator.domain.errors import NotFound
from orchestrator.frontdoor.router import Router


class RouterCommands:
    def __init__(self, router: Router) -> None:
        self._router = router

    async def cancel(self, order_id: str, reason: str, username: str) -> Refusal | None:
        """Cancel an unpaid order; None when done, else why it was refused."""
        try:
            sp = self._router.route(order_id)
        except NotFound as error:
            return Refusal(error.code, str(error))
        command = CancelOrder(uuid.uuid4().hex, order_id, reason, f"console: {username}")
        result = await self._router.call(sp, command)
        return Refusal(result.code, result.message) if isinstance(result, Rejected) else None
