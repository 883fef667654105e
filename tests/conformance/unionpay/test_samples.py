"""UnionPay's public wire samples (tests/fixtures/wire/unionpay/SOURCES.md) through
windowpay's reader, certificate check, signature check and outcome mapping. The signed
samples were signed by UnionPay's test environment; their certificates chain to its
public test root and intermediate, so their signatures are checked for real, at the time
the samples were made (the certificates have expired since)."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import pytest

from orchestrator.channels.unionpay.adapter import UnionPay, txn_time
from orchestrator.channels.unionpay.bill import parse_unionpay
from orchestrator.channels.unionpay.keys import UnionPayKeys
from orchestrator.channels.unionpay.notify import UnionPayNotifications
from orchestrator.channels.unionpay.outcomes import VOID
from orchestrator.domain.states import Channel
from orchestrator.providers.certificates import (
    SigningIdentity,
    issue,
    load_pem_certificate,
)
from orchestrator.providers.http import HttpAnswer, HttpClient
from orchestrator.providers.port import (
    OutcomeUnknown,
    RefundCall,
    RefundStatus,
    TradeRef,
    TradeStatus,
)
from orchestrator.providers.signing import generate_key
from tests.conformance.unionpay.acp import SIGNED_ANSWERS, WIRE, read_raw, sample_text

BEIJING = ZoneInfo("Asia/Shanghai")
TEST_MER_ID = "777290058167151"  # the merchant of the signed test-environment samples
OLDER_MER_ID = "700000000000001"  # the merchant of the 2018 ones (holder 00040000:SIGN)
UNIONPAY = "中国银联股份有限公司"


def at(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=BEIJING)


def at_ms(text: str) -> int:
    return int(at(text).timestamp() * 1000)


class Canned(HttpClient):
    """A fake transport that answers every request with one stored body."""

    def __init__(self, body: bytes) -> None:
        super().__init__("http://127.0.0.1:9")
        self.body = body
        self.sent: list[dict[str, str]] = []

    async def request(self, method: str, target: str, **kwargs: object) -> HttpAnswer:  # type: ignore[override]
        body = kwargs.get("body")
        assert isinstance(body, bytes)
        self.sent.append(dict(parse_qsl(body.decode())))
        return HttpAnswer(200, {}, self.body)


def sample_keys(signer_name: str = UNIONPAY) -> UnionPayKeys:
    key = generate_key()
    merchant = SigningIdentity(key, issue("merchant", key, None, ca=False))
    root = load_pem_certificate((WIRE / "acp_test_root.cer").read_bytes())
    middle = load_pem_certificate((WIRE / "acp_test_middle.cer").read_bytes())
    return UnionPayKeys(merchant, root, middle, signer_name)


def adapter_answering(
    sample: str, when: str, keys: UnionPayKeys | None = None, mer_id: str = TEST_MER_ID
) -> UnionPay:
    moment = at(when).timestamp()
    http = Canned((WIRE / sample).read_bytes())
    return UnionPay(http, keys or sample_keys(), mer_id, "https://x.example/n", lambda: moment)


def test_the_signed_samples_are_raw_and_carry_no_cert_id() -> None:
    for name in SIGNED_ANSWERS:
        raw = (WIRE / name).read_bytes().decode()
        fields = read_raw(raw)
        assert "certId" not in fields and fields["version"] == "5.1.0"
        assert "+" in fields["signature"] + fields["signPubKeyCert"]  # raw: never a space
        assert "\r\n" in fields["signPubKeyCert"]


async def test_a_paid_query_answer_is_read_verified_and_means_paid() -> None:
    """Fails on the code that read answers with parse_qsl (a `+` became a space) and
    demanded a certId the answer does not carry."""
    adapter = adapter_answering("answer_query_paid.txt", "20240105145046")
    trade = TradeRef("pay20240105145046", 1, at_ms("20240105145046"))
    answer = await adapter.query(trade)
    assert answer.status is TradeStatus.PAID
    assert answer.trade_no == "442401051450467846498"
    [sent] = adapter._http.sent  # type: ignore[attr-defined]
    assert (sent["orderId"], sent["txnTime"]) == ("pay20240105145046", "20240105145046")


async def test_a_refund_answer_is_accepted_pending_its_own_query() -> None:
    adapter = adapter_answering("answer_refund.txt", "20240105165842")
    sale = TradeRef("pay2024010516", 2, at_ms("20240105160000"), "052401051658427862748")
    call = RefundCall(sale, "refundpay20240105165842", 1, at_ms("20240105165842"))
    answer = await adapter.refund(call)
    assert (answer.status, answer.refund_no) == (RefundStatus.PENDING, "052401051658427863998")


async def test_a_void_answer_is_accepted() -> None:
    adapter = adapter_answering("answer_void.txt", "20240105164725")
    sale = TradeRef("cancelpay", 1, at_ms("20240105164000"), "652401051647252574008")
    call = RefundCall(sale, "cancelpay20240105164725", 1, at_ms("20240105164725"))
    # The adapter's own void names its orderId with a V; the sample's does not.
    answer = await adapter._transact(VOID, "cancelpay20240105164725", call)
    assert (answer.status, answer.refund_no) == (RefundStatus.PENDING, "652401051647252421528")


async def test_a_signed_query_of_an_unpaid_order_means_not_paid_yet() -> None:
    """origRespCode 05 (受理, not paid) as UnionPay's test environment answered it."""
    keys = sample_keys(signer_name="00040000:SIGN")
    adapter = adapter_answering("answer_query_unpaid.txt", "20180614042747", keys, OLDER_MER_ID)
    answer = await adapter.query(TradeRef("20180614042747", 1, at_ms("20180614042747")))
    assert answer.status is TradeStatus.CONFIRMING


async def test_a_signed_34_means_no_such_transaction() -> None:
    """respCode 34 as the test environment answered it: it names the orderId and txnTime
    asked, under the query's own txnType 00."""
    keys = sample_keys(signer_name="00040000:SIGN")
    adapter = adapter_answering("answer_query_not_found.txt", "20180614041856", keys, OLDER_MER_ID)
    answer = await adapter.query(TradeRef("20180204092701", 1, at_ms("20180614041856")))
    assert answer.status is TradeStatus.NOT_FOUND


async def test_an_answer_whose_plus_became_a_space_is_unknown() -> None:
    """What URL-decoding the raw answer did to every live answer."""
    raw = (WIRE / "answer_query_paid.txt").read_bytes()
    decoded = dict(parse_qsl(raw.decode(), keep_blank_values=True))
    assert decoded["signature"] != read_raw(raw.decode())["signature"]
    spaced = raw.replace(b"sEJYCC94bvr5KJ12EVeid6kVoyviipkieSp5I9r7baINMZdTxJZ", b"sEJ YCC")
    moment = at("20240105145046").timestamp()
    adapter = UnionPay(Canned(spaced), sample_keys(), TEST_MER_ID, "x", lambda: moment)
    with pytest.raises(OutcomeUnknown, match="signature"):
        await adapter.query(TradeRef("pay20240105145046", 1, at_ms("20240105145046")))


async def test_the_sample_from_another_holder_is_not_trusted() -> None:
    """The SDK trusts a signPubKeyCert only if its holder is UnionPay's signer."""
    adapter = adapter_answering(
        "answer_query_paid.txt", "20240105145046", sample_keys(signer_name="00040000:SIGN")
    )
    with pytest.raises(OutcomeUnknown, match="holder"):
        await adapter.query(TradeRef("pay20240105145046", 1, at_ms("20240105145046")))


async def test_an_expired_signing_certificate_is_not_trusted() -> None:
    adapter = adapter_answering("answer_query_paid.txt", "20260101000000")
    with pytest.raises(OutcomeUnknown, match="not trusted"):
        await adapter.query(TradeRef("pay20240105145046", 1, at_ms("20240105145046")))


async def test_the_sale_notification_sample_is_verified_and_means_paid() -> None:
    moment = at("20220908132206").timestamp()
    verifier = UnionPayNotifications(sample_keys(), TEST_MER_ID, lambda: moment)
    notice = await verifier.verify({}, (WIRE / "notify_sale.form").read_bytes())
    assert (notice.out_trade_no, notice.trade_no, notice.amount_fen, notice.trade_status) == (
        "yansongda20220908132206", "782209081322060674028", 1, TradeStatus.PAID,
    )  # fmt: skip
    assert notice.channel is Channel.UNIONPAY


def test_unionpays_sample_settlement_file_is_read_row_by_row() -> None:
    """The SDK demo's sample file: 8 sales whose amounts add up to its own summary
    (RD file: 交易金额 贷 13227.00). Fails on the parser of invented H|/D|/T| lines."""
    rows = parse_unionpay((WIRE / "settlement_802310048993424_20150905.zip").read_bytes())
    assert len(rows) == 8 and not any(r.refund for r in rows)
    assert sum(r.amount_fen for r in rows) == 1_322_700
    with zipfile.ZipFile(WIRE / "settlement_802310048993424_20150905.zip") as archive:
        summary = archive.read("RD201015090501_802310048993424").decode("gbk")
    assert "13227.00" in summary
    first = next(r for r in rows if r.out_trade_no == "10078087")
    assert first.trade_no == "201509061122031906248" and first.amount_fen == 476800
    assert first.at == datetime(2015, 9, 6, 11, 22, 3)
    assert all(r.provider is Channel.UNIONPAY and r.kept for r in rows)


def test_a_settlement_line_of_the_wrong_width_is_refused() -> None:
    from orchestrator.providers.bills import BillError

    with zipfile.ZipFile(WIRE / "settlement_802310048993424_20150905.zip") as archive:
        name = "INN15090588ZM_802310048993424"
        lines = archive.read(name).split(b"\r\n")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, lines[0][:-1] + b"\r\n")
    with pytest.raises(BillError, match="bytes"):
        parse_unionpay(buffer.getvalue())


def test_the_sample_time_format_is_acp_txn_time() -> None:
    assert txn_time(at_ms("20240105145046")) == "20240105145046"
    assert date(2015, 9, 5).strftime("%m%d") == "0905"


def test_unionpays_sha1_signed_certificate_chain_is_verified() -> None:
    """UnionPay's CFCA root, intermediate and signing certificates are signed with
    sha1WithRSA; the chain check must take them (cryptography's own issuer check refuses
    SHA-1), and still refuse a certificate its intermediate did not sign."""
    from orchestrator.providers.certificates import CertificateError, verify_chain

    keys = sample_keys()
    leaf = load_pem_certificate(read_raw(sample_text("answer_void.txt"))["signPubKeyCert"].encode())
    assert leaf.signature_hash_algorithm is not None
    assert leaf.signature_hash_algorithm.name == "sha1"
    verify_chain(leaf, [keys.middle], keys.root, at("20240105164725"))
    stranger = issue("CFCA TEST OCA1", generate_key(), None, ca=True, now=at("20240101000000"))
    with pytest.raises(CertificateError, match="not issued by"):
        verify_chain(leaf, [stranger], keys.root, at("20240105164725"))


async def test_a_line_break_after_the_answer_is_no_part_of_its_signature() -> None:
    body = (WIRE / "answer_query_paid.txt").read_bytes() + b"\r\n"
    moment = at("20240105145046").timestamp()
    adapter = UnionPay(Canned(body), sample_keys(), TEST_MER_ID, "x", lambda: moment)
    trade = TradeRef("pay20240105145046", 1, at_ms("20240105145046"))
    assert (await adapter.query(trade)).status is TradeStatus.PAID


def test_half_a_character_in_a_field_not_read_spoils_nothing() -> None:
    """A free-text field cut to its byte width may end in half a GBK character (the
    二级商户简称 here); the SDK demo's reader decodes each field leniently. Fails on the
    code that refused the whole day's file for it, so the day was never reconciled. A
    field windowpay reads must still be clean GBK."""
    from orchestrator.channels.unionpay.bill import ORDER_ID, ZM_WIDTHS
    from orchestrator.providers.bills import BillError

    name = "INN15090588ZM_802310048993424"
    with zipfile.ZipFile(WIRE / "settlement_802310048993424_20150905.zip") as archive:
        line = archive.read(name).split(b"\r\n")[0]

    def with_field(index: int, value: bytes) -> bytes:
        at = sum(ZM_WIDTHS[:index]) + index
        changed = line[:at] + value + line[at + len(value) :]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(name, changed + b"\r\n")
        return buffer.getvalue()

    cut = ("A" + "车管所" * 6).encode("gbk")[:32]  # its last byte half a character
    [row] = parse_unionpay(with_field(30, cut))
    assert (row.out_trade_no, row.amount_fen) == ("10078087", 476800)
    with pytest.raises(BillError, match="GBK"):
        parse_unionpay(with_field(ORDER_ID, cut))
