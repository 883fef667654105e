"""A PaymentProvider that measures the one it wraps: latency and failures per call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import date
from typing import TypeVar

from orchestrator.metrics import PROVIDER_DURATION, PROVIDER_ERRORS
from orchestrator.providers.port import (
    OutcomeUnknown,
    PayCall,
    PaymentProvider,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RefundAnswer,
    ReverseAnswer,
    TradeAnswer,
)

T = TypeVar("T")


def _kind(error: BaseException) -> str:
    if isinstance(error, ProviderUnavailable):
        return "unavailable"
    if isinstance(error, ProviderRejected):
        return "rejected"
    if isinstance(error, OutcomeUnknown):
        return "unknown"
    return "timeout"  # cancelled by the engine's deadline


class InstrumentedProvider:
    def __init__(self, inner: PaymentProvider) -> None:
        self._inner = inner
        self.channel = inner.channel
        self._name = inner.channel.value

    @property
    def inner(self) -> PaymentProvider:
        """The adapter itself, for what the port does not cover (Alipay's precreate)."""
        return self._inner

    async def _measure(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await call
        except (ProviderError, TimeoutError, asyncio.CancelledError) as error:
            PROVIDER_ERRORS.labels(self._name, operation, _kind(error)).inc()
            raise
        finally:
            PROVIDER_DURATION.labels(self._name, operation).observe(time.perf_counter() - started)

    async def pay(self, call: PayCall) -> TradeAnswer:
        return await self._measure("pay", self._inner.pay(call))

    async def query(self, out_trade_no: str) -> TradeAnswer:
        return await self._measure("query", self._inner.query(out_trade_no))

    async def reverse(self, out_trade_no: str) -> ReverseAnswer:
        return await self._measure("reverse", self._inner.reverse(out_trade_no))

    async def refund(
        self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int
    ) -> RefundAnswer:
        return await self._measure(
            "refund", self._inner.refund(out_trade_no, out_refund_no, refund_fen, total_fen)
        )

    async def bill(self, day: date) -> bytes:
        return await self._measure("bill", self._inner.bill(day))
