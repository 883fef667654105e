"""The UnionPay sandbox gateway answers as the public samples do: raw `k=v&...` text
(nothing URL-encoded), no certId, signPubKeyCert and signature last, and no field that
the samples of its kind do not carry. The allowed fields come from the samples
themselves (tests/fixtures/wire/unionpay), never from the sandbox's own table. Fails
on the sandbox that URL-encoded its answers and added certId."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import pytest

from orchestrator.channels.factory import Providers, build_providers
from orchestrator.channels.sandboxes import Sandboxes, start_sandboxes
from orchestrator.channels.unionpay.adapter import UnionPay
from orchestrator.channels.unionpay.sandbox import UnionPayGateway
from orchestrator.domain.states import Channel
from orchestrator.providers.certificates import load_pem_certificate, rsa_public_key
from orchestrator.providers.http import HttpAnswer, HttpClient
from orchestrator.providers.port import PayCall, QrCall, RefundCall, TradeRef
from tests.conformance.unionpay.acp import read_raw, sample_text, signature_holds
from tests.support import code, provider_id, small_config

KIND_SAMPLES = {
    "sale": ["shape_sale_accepted.txt"],
    "apply_qr": ["shape_apply_qr.txt"],
    "reversal": ["shape_reversal.txt"],
    "void": ["answer_void.txt"],
    "refund": ["answer_refund.txt"],
    "query": ["answer_query_paid.txt", "answer_query_unpaid.txt", "shape_query_accepted.txt"],
    "error": ["answer_query_not_found.txt", "shape_query_not_found.txt", "shape_sale_unclear.txt"],
    "file": ["shape_file.txt"],
}
# Card-holder fields of the real answers the sandbox, having no card, leaves out.
CARD_FIELDS = {"accNo", "issuerIdentifyMode", "traceNo", "traceTime", "settleCurrencyCode",
               "settleDate", "exchangeRate"}  # fmt: skip


def allowed(kind: str) -> set[str]:
    fields: set[str] = set()
    for sample in KIND_SAMPLES[kind]:
        fields |= set(read_raw(sample_text(sample)))
    return fields


class Keeping(HttpClient):
    """Passes requests on and keeps every raw answer body, by the request's txnType."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.bodies: list[tuple[dict[str, str], bytes]] = []

    async def request(self, method: str, target: str, **kwargs: object) -> HttpAnswer:  # type: ignore[override]
        answer = await super().request(method, target, **kwargs)  # type: ignore[arg-type]
        body = kwargs.get("body")
        assert isinstance(body, bytes)
        self.bodies.append((dict(parse_qsl(body.decode())), answer.body))
        return answer


@dataclass
class World:
    sandboxes: Sandboxes
    providers: Providers
    adapter: UnionPay
    keeping: Keeping
    trust_pem: bytes


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    config = small_config(time_scale=0.02)
    sandboxes = await start_sandboxes(config, tmp_path)
    config = config.with_base_urls(sandboxes.base_urls)
    providers = build_providers(config, tmp_path)
    adapter = providers[Channel.UNIONPAY].inner  # type: ignore[attr-defined]
    keeping = Keeping(config.providers[Channel.UNIONPAY].base_url)
    adapter._http = keeping
    pem = (tmp_path / "sandbox" / "unionpay" / "platform_cert.pem").read_bytes()
    yield World(sandboxes, providers, adapter, keeping, pem)
    await keeping.close()
    await providers.close()
    await sandboxes.stop()


def check_shape(kind: str, body: bytes, signer_pem: bytes) -> dict[str, str]:
    text = body.decode("utf-8")
    fields = read_raw(text)
    assert "certId" not in fields, kind
    assert "-----BEGIN CERTIFICATE-----" in fields["signPubKeyCert"], kind
    assert "%" not in fields["signature"] + fields["signPubKeyCert"], f"{kind}: URL-encoded"
    assert list(fields)[-2:] == ["signPubKeyCert", "signature"], kind
    assert list(fields)[:-2] == sorted(list(fields)[:-2]), kind
    extra = set(fields) - allowed(kind) - CARD_FIELDS
    assert not extra, f"{kind}: fields no sample carries: {sorted(extra)}"
    public = rsa_public_key(load_pem_certificate(fields["signPubKeyCert"].encode()))
    signer = rsa_public_key(load_pem_certificate(signer_pem))
    assert public.public_numbers() == signer.public_numbers()
    assert signature_holds(public, fields), kind
    return fields


def kind_of(sent: dict[str, str], fields: dict[str, str]) -> str:
    if fields["respCode"] not in ("00", "05"):
        return "error"
    txn = sent["txnType"]
    if txn == "01":
        return "apply_qr" if sent["txnSubType"] == "07" else "sale"
    return {"00": "query", "99": "reversal", "31": "void", "04": "refund", "76": "file"}[txn]


async def test_every_sandbox_answer_has_a_samples_shape(world: World) -> None:
    now_ms = int(time.time() * 1000)
    adapter = world.adapter
    sale = PayCall(provider_id(), code(Channel.UNIONPAY), 8000, "SP01", "T01", "科目一", now_ms)
    await adapter.pay(sale)
    paid = await adapter.query(sale.trade)
    trade = replace(sale.trade, trade_no=paid.trade_no)
    await adapter.refund(RefundCall(trade, provider_id("R"), 100, now_ms))
    whole = PayCall(provider_id(), code(Channel.UNIONPAY), 500, "SP01", "T01", "科目一", now_ms)
    await adapter.pay(whole)
    whole_paid = await adapter.query(whole.trade)
    whole_trade = replace(whole.trade, trade_no=whole_paid.trade_no)
    await adapter.refund(RefundCall(whole_trade, provider_id("R"), 500, now_ms))
    hanging = PayCall(provider_id(), code(Channel.UNIONPAY, "2222"), 500, "SP01", "T", "x", now_ms)
    await adapter.pay(hanging)
    await adapter.reverse(hanging.trade)
    await adapter.query(TradeRef(provider_id(), 100, now_ms))  # not found: 34
    qr = QrCall(provider_id("Q"), 300, "SP01", "T01", "x", now_ms, now_ms + 60_000)
    await adapter.create_qr(qr)
    await adapter.bill(datetime.now(ZoneInfo("Asia/Shanghai")).date())
    seen = set()
    for sent, body in world.keeping.bodies:
        fields = read_raw(body.decode("utf-8"))
        kind = kind_of(sent, fields)
        check_shape(kind, body, world.trust_pem)
        seen.add(kind)
    assert seen == set(KIND_SAMPLES), seen


async def test_the_sandbox_notification_has_the_sample_notifications_shape(world: World) -> None:
    gateway = world.sandboxes.gateways[Channel.UNIONPAY]
    assert isinstance(gateway, UnionPayGateway)
    now_ms = int(time.time() * 1000)
    sale = PayCall(provider_id(), code(Channel.UNIONPAY), 800, "SP01", "T01", "科目一", now_ms)
    await world.adapter.pay(sale)
    trade = gateway.bank.trade(sale.out_trade_no)
    assert trade is not None
    sent = gateway.notification(trade, None)
    fields = dict(parse_qsl(sent.body.decode(), keep_blank_values=True))
    sample = dict(parse_qsl(sample_text("notify_sale.form"), keep_blank_values=True))
    assert "certId" not in fields
    assert not set(fields) - set(sample) - CARD_FIELDS, sorted(set(fields) - set(sample))
    assert {"orderId", "queryId", "txnAmt", "respCode", "merId"} <= set(fields)
    assert sent.content_type.startswith("application/x-www-form-urlencoded")
