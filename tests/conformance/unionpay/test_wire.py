"""windowpay's reading of ACP text (wire.py) against the SDK's, on the public samples."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest

from orchestrator.channels.unionpay.wire import holder_name, parse_answer, signed_text
from orchestrator.providers.certificates import CertificateError
from tests.conformance.unionpay.acp import SIGNED_ANSWERS, WIRE, read_raw, signature_holds
from tests.conformance.unionpay.test_samples import sample_keys


@pytest.mark.parametrize("name", SIGNED_ANSWERS)
def test_windowpay_reads_each_answer_as_the_sdk_does(name: str) -> None:
    raw = (WIRE / name).read_bytes().decode()
    assert parse_answer(raw) == read_raw(raw)


def test_edge_cases_of_the_sdks_reader() -> None:
    for text in ("{a=1&b=2}", "a=x=y&b=", "a=[1&2]&b={3&{4}&c=5", "a=1&flag", "k=v+w%2B"):
        assert parse_answer(text) == read_raw(text), text
    assert parse_answer("k=v+w%2B") == {"k": "v+w%2B"}  # nothing decoded
    assert signed_text({"b": "", "a": "1", "signature": "s"}) == "a=1&b="


def test_the_holder_is_the_third_part_of_the_cn() -> None:
    assert holder_name("041@Z12@00040000:SIGN@00000062") == "00040000:SIGN"
    assert (
        holder_name("041@8310000000083040@中国银联股份有限公司@00016495") == "中国银联股份有限公司"
    )
    assert holder_name("041@Z12@中国银联股份有限公司") == ""  # the SDK would read more


def test_a_value_in_braces_keeps_its_ampersands_and_its_signature() -> None:
    """The older sample (2017, holder 00040000:SIGN) holds tokenPayData={...&...}: written
    raw, as an answer would carry it, it reads back whole and still verifies."""
    fields = dict(parse_qsl((WIRE / "notify_front_token.form").read_text(), keep_blank_values=True))
    assert "&" in fields["tokenPayData"]
    raw = "&".join(f"{k}={v}" for k, v in fields.items())
    assert parse_answer(raw) == fields == read_raw(raw)
    keys = sample_keys(signer_name="00040000:SIGN")
    key = keys.answer_key(fields, datetime(2017, 10, 30, tzinfo=UTC))
    assert signature_holds(key, fields)
    with pytest.raises(CertificateError, match="holder"):
        sample_keys().answer_key(fields, datetime(2017, 10, 30, tzinfo=UTC))
