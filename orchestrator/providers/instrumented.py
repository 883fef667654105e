"""A PaymentProvider that measures the one it wraps: latency and failures per call."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from datetime import date
from typing import TypeVar

from orchestrator.metrics import ANSWER_MISMATCHES, PROVIDER_DURATION, PROVIDER_ERRORS
from orchestrator.providers.port import (
    AnswerMismatch,
    OutcomeUnknown,
    PayCall,
    PaymentProvider,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    QrAnswer,
    QrCall,
    RefundAnswer,
    RefundCall,
    ReverseAnswer,
    TradeAnswer,
    TradeRef,
)

T = TypeVar("T")
log = logging.getLogger(__name__)


def _kind(error: BaseException) -> str:
    if isinstance(error, AnswerMismatch):
        return "mismatch"
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
            if isinstance(error, AnswerMismatch):
                ANSWER_MISMATCHES.labels(self._name, operation).inc()
                log.warning(
                    "%s %s: answer ignored, it is not about the request: %s",
                    self._name,
                    operation,
                    error,
                )
            raise
        finally:
            PROVIDER_DURATION.labels(self._name, operation).observe(time.perf_counter() - started)

    async def pay(self, call: PayCall) -> TradeAnswer:
        return await self._measure("pay", self._inner.pay(call))

    async def query(self, trade: TradeRef) -> TradeAnswer:
        return await self._measure("query", self._inner.query(trade))

    async def reverse(self, trade: TradeRef) -> ReverseAnswer:
        return await self._measure("reverse", self._inner.reverse(trade))

    async def create_qr(self, call: QrCall) -> QrAnswer:
        return await self._measure("create_qr", self._inner.create_qr(call))

    async def close(self, trade: TradeRef) -> ReverseAnswer:
        return await self._measure("close", self._inner.close(trade))

    async def refund(self, call: RefundCall) -> RefundAnswer:
        return await self._measure("refund", self._inner.refund(call))

    async def refund_query(self, call: RefundCall) -> RefundAnswer:
        return await self._measure("refund_query", self._inner.refund_query(call))

    async def bill(self, day: date) -> bytes:
        return await self._measure("bill", self._inner.bill(day))
