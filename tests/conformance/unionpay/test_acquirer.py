"""UnionPay through an acquirer (accessType 1), as UnionPay's ACP demo note for acquirers
(机构接入需做改动) describes it: the four fields on every transaction, the acquirer's
certificate, and no settlement file online."""

from __future__ import annotations

import time
from datetime import date

import pytest

from orchestrator.channels.unionpay.access import Access, access_from
from orchestrator.config import Credentials
from orchestrator.providers.keys import KeyMaterialError
from orchestrator.providers.port import PayCall, ProviderRejected, TradeStatus
from tests.conformance.unionpay.conftest import AdapterFactory, Running
from tests.support import provider_id

ACQUIRER = Access("48021000", "9399", "昆明市车辆管理所", "车管所")


async def test_every_transaction_names_the_acquirer_and_the_merchant(
    counterpart: Running, adapter_for: AdapterFactory
) -> None:
    counterpart.gateway.script["01/06"] = lambda _f: "shape_sale_accepted.txt"
    counterpart.gateway.script["00/00"] = lambda _f: "answer_query_paid.txt"
    adapter = adapter_for(counterpart.base_url, access=ACQUIRER)
    sale = PayCall(provider_id(), "6225880000000000000", 100, "", "", "x", int(time.time() * 1000))
    await adapter.pay(sale)
    assert (await adapter.query(sale.trade)).status is TradeStatus.PAID
    for sent in counterpart.gateway.received:
        assert (sent["accessType"], sent["acqInsCode"], sent["merCatCode"]) == (
            "1", "48021000", "9399",
        )  # fmt: skip
        assert (sent["merName"], sent["merAbbr"]) == ("昆明市车辆管理所", "车管所")
    assert counterpart.gateway.refused == []


async def test_direct_access_sends_none_of_them(
    counterpart: Running, adapter_for: AdapterFactory
) -> None:
    counterpart.gateway.script["01/06"] = lambda _f: "shape_sale_accepted.txt"
    adapter = adapter_for(counterpart.base_url)
    await adapter.pay(PayCall(provider_id(), "6225880000000000000", 1, "", "", "x", 0))
    [sent] = counterpart.gateway.received
    assert sent["accessType"] == "0" and "acqInsCode" not in sent and "merName" not in sent


async def test_no_settlement_file_is_asked_online_through_an_acquirer(
    counterpart: Running, adapter_for: AdapterFactory
) -> None:
    adapter = adapter_for(counterpart.base_url, access=ACQUIRER)
    with pytest.raises(ProviderRejected, match="ACOMN"):
        await adapter.bill(date(2026, 11, 28))
    assert counterpart.gateway.received == []


def test_the_acquirer_settings_go_together() -> None:
    assert not access_from(Credentials({})).through_acquirer
    whole = {"acquirer_id": "48021000", "merchant_category_id": "9399",
             "merchant_name": "n", "merchant_abbr_name": "a"}  # fmt: skip
    assert access_from(Credentials(whole)).fields()["accessType"] == "1"
    with pytest.raises(KeyMaterialError, match="merchant_abbr_name"):
        access_from(Credentials({**whole, "merchant_abbr_name": ""}))
