"""The front door's access interceptor: who is calling (the client certificate, bound to
this deployment and not revoked), whether the authorization table lets that principal
make this call, and the per-principal limits. All before a servicer runs, so a refused
call never reaches an actor and stores nothing. Server streams are registered by their
certificate's serial, so that a revocation can end them.

grpc.aio interceptors do not see the call's context, so each method handler is wrapped:
the wrapper runs the checks with the context and the decoded request in hand. Requests
that do not decode are answered INVALID_ARGUMENT (not gRPC's INTERNAL).

What a client certificate resolves to (its name and serial, whether it binds a principal
of this deployment, the principal, its role and its account of limits) is worked out at
the first call that presents it and remembered (`Callers`), keyed by the certificate's
own bytes as the connection's auth context gives them, never by the peer's address:
every later call of the connection, and of any other connection with the same
certificate, only looks it up. Revocation is not remembered: each call looks its serial
up in the list in force, which the watcher (revocation.py) replaces within WATCH_S of a
change on disk, so a revoked certificate is refused from the first call after that."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc

from orchestrator.access.caller import serving
from orchestrator.access.identity import Identities
from orchestrator.access.limits import Account, Gate
from orchestrator.access.logs import ThrottledWarnings
from orchestrator.access.policy import TABLE, Rule, Scope, denial
from orchestrator.access.revocation import Revocations
from orchestrator.access.streams import OpenStream, OpenStreams, SlowReader
from orchestrator.domain.principals import Directory, Principal
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.metrics import ACCESS_DENIED, ACCESS_LIMITED, ACCESS_REFUSED

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]
MOST_CALLERS = 4096  # certificates remembered at once; the oldest are forgotten beyond


class _Undecodable:
    """Stands for a request whose bytes are not a valid message."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as error:
            return _Undecodable(error)

    return decode


async def _abort(context: Context, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("unreachable: abort raises")


@dataclass(frozen=True, slots=True)
class Caller:
    """A client certificate that names a principal of this deployment."""

    name: str
    serial: int
    principal: Principal
    account: Account  # the principal's, shared by all its certificates and connections


@dataclass(frozen=True, slots=True)
class Refused:
    """A client certificate refused whatever the call, and the answer it gets."""

    name: str
    serial: int
    reason: str  # the label of windowpay_access_refused_total
    message: str
    code: grpc.StatusCode


class Callers:
    """Each certificate's `Caller`, keyed by the certificate's PEM bytes: a different
    certificate (another caller, or the same name issued again after a revocation) is
    another key. At most `most` are kept; beyond, the one remembered first is forgotten
    (and read again if it comes back)."""

    def __init__(
        self, directory: Directory, identities: Identities, gate: Gate, most: int = MOST_CALLERS
    ) -> None:
        self._directory = directory  # who is who (tests/e2e/test_access.py reads it)
        self._identities = identities
        self._gate = gate
        self._most = most
        self._known: dict[bytes, Caller | Refused] = {}

    def __len__(self) -> int:
        return len(self._known)

    def of(self, pem: bytes) -> Caller | Refused:
        caller = self._known.get(pem)
        if caller is None:
            if len(self._known) >= self._most:
                del self._known[next(iter(self._known))]
            caller = self._known[pem] = self._resolve(pem)
        return caller

    def _resolve(self, pem: bytes) -> Caller | Refused:
        presented = self._identities.of(pem)
        name, serial = presented.name, presented.serial
        if presented.unbound is not None:
            return Refused(
                name, serial, "unbound",
                f"the certificate of {name[:64]!r} is not one of this deployment: "
                f"{presented.unbound}",
                grpc.StatusCode.UNAUTHENTICATED,
            )  # fmt: skip
        principal = self._directory.get(name)
        if principal is None:
            return Refused(
                name, serial, "unknown_principal",
                f"principal {name[:64]!r} is not in this deployment's config",
                grpc.StatusCode.PERMISSION_DENIED,
            )  # fmt: skip
        return Caller(name, serial, principal, self._gate.account(principal))


class AccessInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(
        self,
        directory: Directory,
        identities: Identities,
        revocations: Revocations,
        gate: Gate,
        scope: Scope,
        streams: OpenStreams,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory = directory  # who is who (tests/e2e/test_access.py reads it)
        self._revocations = revocations
        self._gate = gate
        self._scope = scope
        self._streams = streams
        self._clock = clock
        self._warnings = ThrottledWarnings(log, clock=clock)
        self._wrapped: dict[str, Any] = {}
        self.callers = Callers(directory, identities, gate)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        method: str = details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            handler: Any = await continuation(details)
            if handler is None:  # unknown methods are not kept: the table stays bounded
                return None
            wrapped = self._wrapped[method] = self._wrap(method, handler)
        return wrapped

    def _wrap(self, method: str, handler: Any) -> Any:
        """The method's handler with the checks in front; made once per method."""
        rule = TABLE.get(method)
        decode = _tolerant(handler.request_deserializer)
        encode = handler.response_serializer
        if handler.request_streaming:  # reflection: its own decoder, only the role is checked
            decode = handler.request_deserializer
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, rule, handler.unary_unary), decode, encode
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._unary_stream(method, rule, handler.unary_stream), decode, encode
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._streaming(method, rule, handler.stream_unary, unary=True), decode, encode
            )
        return grpc.stream_stream_rpc_method_handler(
            self._streaming(method, rule, handler.stream_stream, unary=False), decode, encode
        )

    # ---- the checks -----------------------------------------------------------------

    async def _caller(self, context: Context) -> tuple[Principal, Account, int]:
        """The caller, its account and its certificate's serial."""
        pem = next(iter(context.auth_context().get("x509_pem_cert", ())), None)
        if pem is None:
            ACCESS_REFUSED.labels("no_certificate").inc()
            await _abort(
                context, grpc.StatusCode.UNAUTHENTICATED, "a client certificate is required"
            )
        known = self.callers.of(pem)
        if self._revocations.revoked(known.serial):
            name = known.name
            await self._refuse(context, "revoked", name, f"the certificate of {name} is revoked")
        if isinstance(known, Refused):
            await self._refuse(context, known.reason, known.name, known.message, known.code)
        principal = known.principal
        serving(principal)  # the call's own task: what the servicers show it
        return principal, known.account, known.serial

    async def _refuse(
        self,
        context: Context,
        reason: str,
        name: str,
        message: str,
        code: grpc.StatusCode = grpc.StatusCode.UNAUTHENTICATED,
    ) -> NoReturn:
        ACCESS_REFUSED.labels(reason).inc()
        self._warnings.warning(
            (reason, name[:64]), f"certificate refused: {reason}",
            {"principal": name[:64], "reason": reason},
        )  # fmt: skip
        await _abort(context, code, message)

    async def _admit(
        self, context: Context, method: str, rule: Rule | None, request: Any, *, stream: bool
    ) -> tuple[Principal, Account, int]:
        principal, account, serial = await self._caller(context)
        if isinstance(request, _Undecodable):
            await _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request to {method} is not a valid message",
            )
        reason = denial(rule, principal, request, self._scope)
        if reason is not None:
            await self._deny(context, principal, method, reason)
        if not account.rate_ok(self._clock()):
            await self._limit(
                context,
                principal,
                "rate",
                f"{principal.name} is over {account.rate:g} calls/s (burst {account.burst})",
            )
        bound = account.enter(stream=stream)
        if bound is not None:
            kind = "streams" if "streams" in bound else "calls"
            await self._limit(context, principal, kind, f"{principal.name}: {bound}")
        return principal, account, serial

    async def _deny(
        self, context: Context, principal: Principal, method: str, reason: str
    ) -> NoReturn:
        ACCESS_DENIED.labels(principal.role.value, method.rpartition("/")[2]).inc()
        self._warnings.warning(
            (principal.name, method), "access denied",
            {"principal": principal.name, "role": principal.role.value, "method": method,
             "reason": reason},
        )  # fmt: skip
        await _abort(
            context,
            grpc.StatusCode.PERMISSION_DENIED,
            f"{principal.name} ({principal.role.value}) may not call {method}: {reason}",
        )

    async def _hide(
        self, context: Context, principal: Principal, method: str, reason: str, request: Any
    ) -> NoReturn:
        """An answer out of the caller's reach (found by a secondary key: a business case,
        a receipt number) is denied and counted like any call, but answered as if nothing
        had been found: the caller learns neither another point's order id nor that the
        case or receipt exists. The log keeps the reason."""
        ACCESS_DENIED.labels(principal.role.value, method.rpartition("/")[2]).inc()
        self._warnings.warning(
            (principal.name, method), "access denied",
            {"principal": principal.name, "role": principal.role.value, "method": method,
             "reason": reason},
        )  # fmt: skip
        await _abort(context, grpc.StatusCode.NOT_FOUND, not_found_text(request))

    async def _limit(
        self, context: Context, principal: Principal, kind: str, message: str
    ) -> NoReturn:
        ACCESS_LIMITED.labels(principal.role.value, kind).inc()
        await _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, message)

    # ---- the wrappers ---------------------------------------------------------------

    def _unary(self, method: str, rule: Rule | None, inner: Any) -> Any:
        async def call(request: Any, context: Context) -> Any:
            principal, account, _ = await self._admit(context, method, rule, request, stream=False)
            try:
                answer = await inner(request, context)
            finally:
                account.leave(stream=False)
            if rule is not None and rule.answer is not None:
                reason = rule.answer(principal, answer, self._scope)
                if reason is not None:
                    await self._hide(context, principal, method, reason, request)
            return answer

        return call

    def _unary_stream(self, method: str, rule: Rule | None, inner: Any) -> Any:
        def call(request: Any, context: Context) -> AsyncGenerator[Any, None]:
            stream = OpenStream(context)  # made in the call's own task
            events = self._streamed(stream, method, rule, inner, request, context)
            stream.hold(events)
            return events

        return call

    async def _streamed(
        self, stream: OpenStream, method: str, rule: Rule | None, inner: Any, request: Any,
        context: Context,
    ) -> AsyncGenerator[Any, None]:  # fmt: skip
        principal, account, serial = await self._admit(context, method, rule, request, stream=True)
        reader = SlowReader(stream, principal.role.value, self._gate.limits.stream_stall_s)
        try:
            with self._streams.registered(serial, stream):
                async with contextlib.aclosing(inner(request, context)) as events:
                    async for item in events:
                        with reader.writing():
                            yield item
        finally:
            account.leave(stream=True)

    def _streaming(self, method: str, rule: Rule | None, inner: Any, *, unary: bool) -> Any:
        """Client-streaming calls (reflection): only the role is checked."""

        async def call_unary(requests: Any, context: Context) -> Any:
            _, account, serial = await self._admit(context, method, rule, None, stream=True)
            try:
                with self._streams.registered(serial, OpenStream(context)):
                    return await inner(requests, context)
            finally:
                account.leave(stream=True)

        async def call_stream(requests: Any, context: Context) -> AsyncIterator[Any]:
            _, account, serial = await self._admit(context, method, rule, None, stream=True)
            try:
                with self._streams.registered(serial, OpenStream(context)):
                    async for item in inner(requests, context):
                        yield item
            finally:
                account.leave(stream=True)

        return call_unary if unary else call_stream


def not_found_text(request: Any) -> str:
    """What the servicer answers when the order or receipt the request names does not
    exist (frontdoor/door.py, frontdoor/backoffice.py): the same words for one out of
    reach (a test holds the two together)."""
    if isinstance(request, pb.GetOrderRequest):
        if request.WhichOneof("key") == "business_no":
            return f"no order for business case {request.business_no} not found"
        return f"order {request.order_id} not found"
    if isinstance(request, pb.GetReceiptRequest):
        if request.WhichOneof("key") == "order_id":
            return f"no receipt for order {request.order_id} (is it paid?)"
        return "no receipt with that number and check code"
    return "not found"
