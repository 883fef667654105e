"""The listener over real HTTP with a real verifier (Alipay's) and a fake actor: what it
answers and counts for each outcome, and that nothing reaches an actor unverified."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from orchestrator.channels.alipay.notify import AlipayNotifications
from orchestrator.channels.registry import ensure_dev_keys
from orchestrator.channels.sandboxes import gateways_for
from orchestrator.domain.states import Channel
from orchestrator.notify.listener import NotifyListener
from orchestrator.providers.keys import provider_keys
from orchestrator.providers.notices import Notice, NoticeOutcome, NoticeProbe
from tests.support import code, small_config

OUT_TRADE_NO = "E1K2M9XZ4TBA7Q2PP1ABC123"  # order E1-K2M9XZ4TBA7Q2P, its first attempt
STRANGER = "Q9K2M9XZ4TBA7Q2PP1ABC123"  # of a service point not served here


class FakeActor:
    """The port the listener calls: answers a set outcome, and keeps what it was told."""

    def __init__(self, outcome: NoticeOutcome) -> None:
        self.outcome = outcome
        self.told: list[Notice] = []

    async def observe(self, notice: Notice) -> NoticeOutcome:
        self.told.append(notice)
        return self.outcome


def counted(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "windowpay_notifications_total", {"channel": "ALIPAY", "outcome": outcome}
    )
    return value or 0.0


async def signed(keys_dir: Path, out_trade_no: str) -> bytes:
    """The Alipay sandbox's notification of a paid trade."""
    config = small_config(prefix="E")
    ensure_dev_keys(keys_dir, config.sandboxed())
    gateway = gateways_for(config, keys_dir)[Channel.ALIPAY]
    reply = await gateway.bank.pay(out_trade_no, code(Channel.ALIPAY), 8000, "E1")
    assert reply.trade is not None
    sent = gateway.notification(reply.trade, None)
    assert sent is not None
    return sent.body


@pytest.fixture
async def alipay_body(tmp_path: Path) -> bytes:
    return await signed(tmp_path, OUT_TRADE_NO)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[NotifyListener, TestClient]]:
    listener = NotifyListener()
    async with TestClient(TestServer(listener.app)) as client:
        yield listener, client


def attach(listener: NotifyListener, keys_dir: Path, actor: FakeActor) -> None:
    config = small_config(prefix="E")
    public = provider_keys(keys_dir, "alipay").for_merchant().peer_public
    verifier = AlipayNotifications(
        public, config.providers[Channel.ALIPAY].merchant_id, 300, refunds=no_refunds
    )
    listener.attach({Channel.ALIPAY: verifier}, {"E1": actor, "E2": actor})


async def no_refunds(out_trade_no: str, out_request_no: str) -> None:
    return None  # only payment notifications are sent here


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_before_the_actors_are_ready_it_asks_for_a_resend(
    served: tuple[NotifyListener, TestClient], alipay_body: bytes
) -> None:
    _, client = served
    answer = await client.post("/notify/alipay", data=alipay_body, headers=FORM)
    assert answer.status == 503


@pytest.mark.parametrize(
    ("outcome", "answer"),
    [
        (NoticeOutcome.APPLIED, "success"),
        (NoticeOutcome.DUPLICATE, "success"),
        (NoticeOutcome.IGNORED, "success"),
        (NoticeOutcome.MISMATCH, "fail"),
        (NoticeOutcome.DEFERRED, "fail"),
    ],
)
async def test_a_verified_notification_is_answered_as_its_actor_says(
    served: tuple[NotifyListener, TestClient],
    alipay_body: bytes,
    tmp_path: Path,
    outcome: NoticeOutcome,
    answer: str,
) -> None:
    listener, client = served
    actor = FakeActor(outcome)
    attach(listener, tmp_path, actor)
    before = counted(outcome.value)
    reply = await client.post("/notify/alipay", data=alipay_body, headers=FORM)
    assert (reply.status, await reply.text()) == (200, answer)
    [notice] = actor.told
    assert (notice.out_trade_no, notice.amount_fen) == (OUT_TRADE_NO, 8000)
    assert counted(outcome.value) == before + 1


async def test_a_notification_repeated_after_success_is_a_duplicate_read_once(
    served: tuple[NotifyListener, TestClient], alipay_body: bytes, tmp_path: Path
) -> None:
    """Alipay sends the same notify_id again (it may not have heard `success`): answered
    `success` again, counted a duplicate, not a refusal, and not read a second time."""
    listener, client = served
    actor = FakeActor(NoticeOutcome.APPLIED)
    attach(listener, tmp_path, actor)
    duplicates, refusals = counted("duplicate"), counted("refused")
    for _ in range(2):
        reply = await client.post("/notify/alipay", data=alipay_body, headers=FORM)
        assert (reply.status, await reply.text()) == (200, "success")
    assert len(actor.told) == 1
    assert (counted("duplicate"), counted("refused")) == (duplicates + 1, refusals)


class Probed:
    """A verifier that meets only the provider's signature probes."""

    channel = Channel.WECHAT

    async def verify(self, headers: object, body: bytes) -> Notice:
        raise NoticeProbe("WeChat Pay's signature probe (WECHATPAY/SIGNTEST/): refused")

    def accepted(self) -> web.Response:
        return web.Response(status=204)

    def refused(self, why: str) -> web.Response:
        return web.json_response({"code": "FAIL", "message": why}, status=400)


async def test_a_signature_probe_is_refused_and_counted_as_a_probe(
    served: tuple[NotifyListener, TestClient],
) -> None:
    """Refused as the provider expects, but not counted among the refusals that page
    (WindowpayNotificationsRefused): the provider tests us, nobody attacks."""
    listener, client = served
    actor = FakeActor(NoticeOutcome.APPLIED)
    listener.attach({Channel.WECHAT: Probed()}, {"E1": actor})  # type: ignore[dict-item]

    def probes() -> tuple[float, float]:
        labels = {"channel": "WECHAT"}
        sample = REGISTRY.get_sample_value
        return (
            sample("windowpay_notifications_total", {**labels, "outcome": "probe"}) or 0.0,
            sample("windowpay_notifications_total", {**labels, "outcome": "refused"}) or 0.0,
        )

    before = probes()
    reply = await client.post("/notify/wechat", data=b"{}")
    assert reply.status == 400 and not actor.told
    assert probes() == (before[0] + 1, before[1])


async def test_forged_and_unroutable_notifications_never_reach_an_actor(
    served: tuple[NotifyListener, TestClient], alipay_body: bytes, tmp_path: Path
) -> None:
    listener, client = served
    actor = FakeActor(NoticeOutcome.APPLIED)
    attach(listener, tmp_path, actor)
    params = dict(parse_qsl(alipay_body.decode()))
    forged = urlencode({**params, "total_amount": "0.01"}).encode()
    refused = counted("refused")
    reply = await client.post("/notify/alipay", data=forged, headers=FORM)
    assert await reply.text() == "fail"
    assert counted("refused") == refused + 1
    reply = await client.post("/notify/wechat", data=alipay_body, headers=FORM)
    assert reply.status == 404  # no verifier for that channel here
    reply = await client.post("/notify/alipay", data=b"x" * 70_000, headers=FORM)
    assert await reply.text() == "fail"  # too large to be a notification
    unknown = counted("unknown")
    stranger = await signed(tmp_path, STRANGER)
    reply = await client.post("/notify/alipay", data=stranger, headers=FORM)
    assert await reply.text() == "success"  # answered received: the provider stops
    assert counted("unknown") == unknown + 1
    assert actor.told == []


class Forged(Probed):
    """Refuses every post, with the sender's own oversized header in its words."""

    async def verify(self, headers: object, body: bytes) -> Notice:
        from orchestrator.providers.notices import NoticeRefused

        raise NoticeRefused(f"signed under unknown serial {'X' * 7000!r}")


async def test_refusals_are_logged_once_a_minute_and_cut_short(
    served: tuple[NotifyListener, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone may post here: a flood of forged notifications must not flood the log."""
    listener, client = served
    listener.attach({Channel.WECHAT: Forged()}, {"E1": FakeActor(NoticeOutcome.APPLIED)})  # type: ignore[dict-item]
    with caplog.at_level("WARNING", logger="orchestrator.notify.listener"):
        for _ in range(200):
            reply = await client.post("/notify/wechat", data=b"{}")
            assert reply.status == 400
            assert len(await reply.read()) < 1024
    warnings = [r for r in caplog.records if r.name == "orchestrator.notify.listener"]
    assert len(warnings) == 1
    assert len(warnings[0].getMessage()) < 1024
