"""Signatures: the published WeChat v2 test vector, each provider's message form, and
tampered messages refused."""

import hashlib

import pytest

from orchestrator.channels.alipay.adapter import raw_member
from orchestrator.channels.unionpay.wire import digest as digest_message
from orchestrator.channels.wechat.adapter import (
    answer_message,
    authorization,
    parse_authorization,
    request_message,
)
from orchestrator.providers.signing import (
    generate_key,
    serial_of,
    sign,
    sorted_pairs,
    verify,
)

KEY = generate_key()
OTHER = generate_key()


def v2_md5(params: dict[str, str], api_key: str) -> str:
    """WeChat Pay APIv2's MD5 signature. windowpay speaks APIv3 only and signs nothing
    with it: it is here because its published test vector pins down the parameter
    canonicalisation the other channels share (sorted_pairs)."""
    text = f"{sorted_pairs(params, exclude=frozenset({'sign'}))}&key={api_key}"
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest().upper()


def test_the_published_wechat_v2_vector() -> None:
    params = {
        "appid": "wxd930ea5d5a258f4f",
        "mch_id": "10000100",
        "device_info": "1000",
        "body": "test",
        "nonce_str": "ibuaiVcKdpRxkhJA",
    }
    assert v2_md5(params, "192006250b4c09247ec02edce69f6a2d") == (
        "9A0A8659F005D6984697E2CA0A9CF3B7"
    )
    params["sign"] = "ignored"  # the signature itself is never signed
    assert v2_md5(params, "192006250b4c09247ec02edce69f6a2d") == (
        "9A0A8659F005D6984697E2CA0A9CF3B7"
    )


def test_sorted_pairs_skip_empty_values_and_excluded_names() -> None:
    assert sorted_pairs(
        {"b": "2", "a": "1", "sign": "x", "c": ""}, exclude=frozenset({"sign"})
    ) == ("a=1&b=2")


def test_alipay_signs_its_documented_content_form() -> None:
    # The example of Alipay's signing guide: every parameter but sign, sorted, unencoded.
    params = {
        "app_id": "2014072300007148",
        "method": "alipay.mobile.public.menu.add",
        "charset": "GBK",
        "sign_type": "RSA2",
        "timestamp": "2014-07-24 03:07:50",
        "biz_content": '{"button":[{"actionParam":"ZFB_HFCZ","actionType":"out"}]}',
        "version": "1.0",
        "sign": "ignored",
    }
    assert sorted_pairs(params, exclude=frozenset({"sign"})) == (
        'app_id=2014072300007148&biz_content={"button":[{"actionParam":"ZFB_HFCZ",'
        '"actionType":"out"}]}&charset=GBK&method=alipay.mobile.public.menu.add'
        "&sign_type=RSA2&timestamp=2014-07-24 03:07:50&version=1.0"
    )


def test_rsa_signatures_verify_and_tampering_is_caught() -> None:
    message = request_message(
        "POST", "/v3/pay/transactions/codepay", "1700000000", "n1", b'{"a":1}'
    )
    assert message == b'POST\n/v3/pay/transactions/codepay\n1700000000\nn1\n{"a":1}\n'
    signature = sign(KEY, message)
    assert verify(KEY.public_key(), message, signature)
    assert not verify(KEY.public_key(), message.replace(b"1}", b"2}"), signature)
    assert not verify(OTHER.public_key(), message, signature)
    assert not verify(KEY.public_key(), message, "not base64!")
    assert not verify(KEY.public_key(), message, signature[:-4] + "AAAA")


def test_wechat_authorization_header_round_trip() -> None:
    from orchestrator.channels.wechat.platform import WeChatMerchant

    keys = WeChatMerchant(KEY, serial_of(KEY.public_key()))
    header = authorization(keys, "1900000109", "GET", "/v3/x?mchid=1", b"", 1_700_000_000)
    fields = parse_authorization(header)
    assert fields["mchid"] == "1900000109" and fields["timestamp"] == "1700000000"
    assert fields["serial_no"] == serial_of(KEY.public_key())
    message = request_message("GET", "/v3/x?mchid=1", "1700000000", fields["nonce_str"], b"")
    assert verify(KEY.public_key(), message, fields["signature"])
    assert answer_message("1", "n", b"{}") == b"1\nn\n{}\n"
    assert parse_authorization("Basic abc") == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"x_response":{"code":"10000","msg":"ok"},"sign":"s"}', '{"code":"10000","msg":"ok"}'),
        ('{"x_response" : {"a":{"b":[1,2,{"c":"}"}]},"s":"\\"}"},"sign":"s"}',
         '{"a":{"b":[1,2,{"c":"}"}]},"s":"\\"}"}'),
        ('{"sign":"s","x_response":{"k":"x_response"}}', '{"k":"x_response"}'),
        ('{"other":1}', None),
    ],
)  # fmt: skip
def test_alipay_answers_are_verified_over_their_raw_text(text: str, expected: str | None) -> None:
    assert raw_member(text, "x_response") == expected


def test_unionpay_signs_a_digest_of_the_sorted_fields() -> None:
    fields = {"txnType": "01", "merId": "898", "signature": "old", "orderId": "A1"}
    digest = digest_message(fields)
    # ACP: SHA-256, in hex, of the fields but the signature, sorted, as k=v joined by &.
    assert digest == hashlib.sha256(b"merId=898&orderId=A1&txnType=01").hexdigest().encode()
    assert digest == digest_message({**fields, "signature": "other"})
    assert digest != digest_message({**fields, "txnAmt": "1"})
    # An empty field is signed too (the SDK's coverMap2String keeps it).
    assert digest != digest_message({**fields, "reqReserved": ""})
