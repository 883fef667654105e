"""The listener the providers post their notifications to: POST /notify/<channel>.

It is reached without client certificates, so a notification is trusted only once the
channel's verifier has checked the provider's signature (and, where the protocol has
one, its time). A verified notification goes to the actor of the order's service point,
found from the out_trade_no or out_refund_no as a terminal's call is found from its
order id; the actor applies it as one more answer about the trade. Every notification is
counted (windowpay_notifications_total) and logged, and answered as its provider
expects: "received" unless it was refused, did not match, or could not be applied yet.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from typing import Protocol

from aiohttp import web

from orchestrator.access.logs import ThrottledWarnings
from orchestrator.domain.ids import OrderIds, service_point_of
from orchestrator.domain.states import Channel
from orchestrator.metrics import NOTIFICATION_OUTCOMES, NOTIFICATIONS
from orchestrator.providers.notices import (
    Notice,
    NoticeOutcome,
    NoticeProbe,
    NoticeRefused,
    NoticeRepeated,
)
from orchestrator.providers.notices import NoticeVerifier as Verifier

log = logging.getLogger(__name__)
MOST_SHOWN = (
    200  # characters of a refusal's words logged or answered: they hold what the sender wrote
)

MAX_BODY = 64 * 1024  # a notification is a few kilobytes


class NoticeTaker(Protocol):
    """A service-point actor, as the listener sees it."""

    async def observe(self, notice: Notice) -> NoticeOutcome: ...


class NotifyListener:
    """Listens from the start of `windowpay serve` (the sandboxes need its address);
    until `attach` gives it the verifiers and the actors, it answers 503 and the
    provider sends the notification again."""

    def __init__(self) -> None:
        self._verifiers: dict[str, Verifier] = {}
        self._takers: Mapping[str, NoticeTaker] = {}
        self._order_ids = OrderIds(())
        self._refusals = ThrottledWarnings(log)
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.add_routes([web.post("/notify/{channel}", self._take)])

    def attach(
        self, verifiers: Mapping[Channel, Verifier], takers: Mapping[str, NoticeTaker]
    ) -> None:
        """The channels' verifiers and the actors (by service point), once ready."""
        for channel in verifiers:
            for outcome in NOTIFICATION_OUTCOMES:
                NOTIFICATIONS.labels(channel.value, outcome)
        self._verifiers = {channel.value.lower(): v for channel, v in verifiers.items()}
        self._takers = takers
        self._order_ids = OrderIds(takers)

    async def _take(self, request: web.Request) -> web.Response:
        if not self._takers:
            return web.Response(status=503, text="starting")
        verifier = self._verifiers.get(request.match_info["channel"])
        if verifier is None:
            raise web.HTTPNotFound()
        channel = verifier.channel.value
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._count(verifier, "refused", "body too large")
        try:
            notice = await verifier.verify(request.headers, body)
        except NoticeProbe as probe:  # refused as the provider expects; no attack
            log.info("%s signature probe refused: %s", channel, probe, extra={"channel": channel})
            return self._count(verifier, "probe", str(probe))
        except NoticeRefused as refusal:
            why = str(refusal)[:MOST_SHOWN]
            # Anyone can post here: one line per channel a minute, the rest counted.
            self._refusals.warning(
                channel, f"{channel} notification refused: {why}",
                {"channel": channel, "peer": (request.remote or "")[:64]},
            )  # fmt: skip
            return self._count(verifier, "refused", why)
        except NoticeRepeated as repeated:
            log.info("%s notification repeated: %s", channel, repeated, extra={"channel": channel})
            return self._count(verifier, "duplicate", str(repeated), received=True)
        outcome = await self._deliver(notice)
        log.info(
            "%s notification about %s: %s", channel, notice.out_no, outcome.value,
            extra={"channel": channel, "out_no": notice.out_no, "outcome": outcome.value},
        )  # fmt: skip
        return self._count(verifier, outcome.value, outcome.value, received=outcome.received)

    async def _deliver(self, notice: Notice) -> NoticeOutcome:
        order_ids = self._order_ids.of(notice.out_no)
        if not order_ids:
            return NoticeOutcome.UNKNOWN
        for order_id in order_ids:
            taker = self._takers.get(service_point_of(order_id))
            if taker is None:
                return NoticeOutcome.DEFERRED
            try:
                outcome = await taker.observe(notice)
            except Exception as error:  # the actor is away: the provider sends it again
                log.warning("notification not delivered to its actor: %r", error)
                return NoticeOutcome.DEFERRED
            if outcome is not NoticeOutcome.UNKNOWN:
                return outcome
        return NoticeOutcome.UNKNOWN

    @staticmethod
    def _count(
        verifier: Verifier, outcome: str, why: str, *, received: bool = False
    ) -> web.Response:
        NOTIFICATIONS.labels(verifier.channel.value, outcome).inc()
        return verifier.accepted() if received else verifier.refused(why)


async def start_listener(
    listener: NotifyListener, host: str, port: int, tls: ssl.SSLContext | None = None
) -> web.AppRunner:
    """Serve the listener, over TLS with `tls` (None: plain HTTP, for a TLS reverse proxy
    in front); the runner's address is read with `bound_port`."""
    runner = web.AppRunner(listener.app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=tls).start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        return int(address[1])
    raise RuntimeError("the notification listener is not listening")
