"""Exact values of the domain's small pieces, written for the mutants `make mutate` found
alive (docs/TESTING.md, "Mutation testing"): each expected value is written by hand."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, time, timedelta, timezone

import pytest

from orchestrator.domain.auth_codes import (
    AuthCodeRule,
    auth_code_digest,
    check_no_auth_code,
    mask_auth_code,
)
from orchestrator.domain.calendar import expiry_after, local_day
from orchestrator.domain.catalog import RequestedLine
from orchestrator.domain.commands import (
    CancelOrder,
    CreateOrder,
    Pay,
    RefundOrder,
    SettleLateSuccess,
    fingerprint,
)
from orchestrator.domain.errors import DomainError, ErrorCode, InvalidArgument
from orchestrator.domain.masking import mask_name
from orchestrator.domain.money import from_yuan, to_yuan
from orchestrator.domain.playbook import NoAnswer, Playbook
from orchestrator.domain.principals import AccessSettings, Directory, Principal, Role
from orchestrator.domain.states import Channel, PayMode
from orchestrator.domain.validation import DIGITS_8, check_id, check_pattern, check_text

CHINA = timezone(timedelta(hours=8))


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# ---- commands.fingerprint: the stored idempotency keys' digests, byte for byte ----------


def test_a_create_orders_fingerprint_is_its_fields_and_lines_in_order() -> None:
    lines = (RequestedLine("PLT-AUTO", 1, 10000, 10000), RequestedLine("DOC-VLIC", 2))
    command = CreateOrder("R1", "B7", "W01", "张三", lines)
    text = "CreateOrder|B7|W01|张三|PLT-AUTOx1@10000/10000;DOC-VLICx2@None/None"
    assert fingerprint(command) == digest(text)


def test_a_pay_fingerprint_names_terminal_order_channel_code_and_cash() -> None:
    command = Pay("R1", "T01", "W01", "SP01-A", Channel.CASH, "", 5000)
    assert fingerprint(command) == digest("Pay|T01|SP01-A|CASH||5000")
    qr = Pay("R1", "T01", "W01", "SP01-A", Channel.WECHAT, "", 0, PayMode.PAYER_SCANS_QR)
    assert fingerprint(qr) == digest("Pay|T01|SP01-A|WECHAT||0|QR")


def test_a_refund_fingerprint_names_amount_reason_and_supervisor() -> None:
    command = RefundOrder("R1", "T01", "W01", "SP01-A", 300, "多收", "S1")
    assert fingerprint(command) == digest("Refund|T01|SP01-A|300|多收|S1")


def test_a_late_success_and_a_cancel_have_their_own_fingerprints() -> None:
    settle = SettleLateSuccess("R1", "SP01-A", "AP1", "420000", "bill")
    assert fingerprint(settle) == digest("SettleLateSuccess|SP01-A|AP1|420000")
    assert fingerprint(CancelOrder("R1", "SP01-A", "不办了")) == digest("CancelOrder|SP01-A|不办了")


# ---- errors, masking, money, calendar -----------------------------------------------------


def test_a_domain_error_keeps_its_message() -> None:
    error = InvalidArgument("bad")
    assert (error.message, str(error), error.code) == ("bad", "bad", ErrorCode.INVALID_ARGUMENT)
    assert DomainError("x").code is ErrorCode.FAILED_PRECONDITION


def test_a_name_keeps_its_first_character() -> None:
    assert mask_name("王五") == "王*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name("") == ""


def test_yuan_strings_both_ways() -> None:
    assert [to_yuan(f) for f in (12345, 5, 100, 0, -7, -250)] == [
        "123.45", "0.05", "1.00", "0.00", "-0.07", "-2.50",
    ]  # fmt: skip
    assert [from_yuan(t) for t in ("0.01", "-3", "12.5", " 7.05 ", "-0.10")] == [
        1, -300, 1250, 705, -10,
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"^not a yuan amount with at most two decimals: '1.234'$"):
        from_yuan("1.234")


def test_an_order_expires_at_the_next_end_of_the_business_day() -> None:
    day_end = time(17, 30)
    afternoon = 1_800_000_000_000  # 2027-01-15 08:00 UTC, 16:00 in China
    local = local_day(afternoon, CHINA)
    assert (local.utcoffset(), local.day, local.hour, local.minute) == (
        timedelta(hours=8), 15, 16, 0,
    )  # fmt: skip
    todays_end = afternoon + 90 * 60_000  # 17:30 in China
    assert expiry_after(afternoon, day_end, CHINA) == todays_end
    assert expiry_after(todays_end - 1, day_end, CHINA) == todays_end
    # at the end or after it: the next day's end
    assert expiry_after(todays_end, day_end, CHINA) == todays_end + 86_400_000
    assert expiry_after(afternoon + 2 * 3_600_000, day_end, CHINA) == todays_end + 86_400_000
    assert expiry_after(afternoon, day_end, UTC) == afternoon + (9 * 60 + 30) * 60_000
    assert local_day(0, UTC).year == 1970


# ---- codes, validation ----------------------------------------------------------------------


def test_an_auth_code_shows_its_first_and_last_four_digits() -> None:
    assert mask_auth_code("134567890123456789") == "1345**********6789"
    assert mask_auth_code("123456789") == "1234*6789"
    assert mask_auth_code("12345678") == "********"
    assert mask_auth_code("") == ""


def test_cash_takes_no_auth_code() -> None:
    check_no_auth_code("")
    with pytest.raises(InvalidArgument, match=r"^a cash payment takes no auth code$"):
        check_no_auth_code("1")


def test_identifiers_are_refused_with_their_reason() -> None:
    assert check_id("SP01-A.b_c:9", "order_id") == "SP01-A.b_c:9"
    assert check_id("a" * 64, "x") == "a" * 64
    with pytest.raises(InvalidArgument, match=r"^order_id is required$"):
        check_id("", "order_id")
    with pytest.raises(InvalidArgument) as refused:
        check_id("-A", "order_id")
    assert refused.value.message == (
        "order_id '-A' must be 1-64 letters, digits or . _ : - (starting with a letter or digit)"
    )
    with pytest.raises(InvalidArgument):
        check_id("a" * 65, "x")


def test_text_is_refused_with_its_reason() -> None:
    assert check_text("", "reason", required=False, limit=5) == ""
    assert check_text("五个字正好", "reason", required=True, limit=5) == "五个字正好"
    with pytest.raises(InvalidArgument, match=r"^reason is required$"):
        check_text("  ", "reason", required=True, limit=5)
    with pytest.raises(InvalidArgument, match=r"^reason is longer than 5 characters$"):
        check_text("六个字的理由", "reason", required=False, limit=5)
    with pytest.raises(
        InvalidArgument, match=r"^reason contains control, format or bidi characters$"
    ):
        check_text("a\u202eb", "reason", required=False, limit=5)


def test_a_pattern_is_refused_with_its_rule() -> None:
    assert check_pattern("20270115", DIGITS_8, "day", "8 digits") == "20270115"
    with pytest.raises(InvalidArgument) as refused:
        check_pattern("2027-01-15", DIGITS_8, "day", "8 digits")
    assert refused.value.message == "day '2027-01-15' must be 8 digits"


# ---- playbook, principals -------------------------------------------------------------------

PLAYBOOK = Playbook(
    pay_timeout_s=10,
    query_timeout_s=2,
    query_interval_s=5,
    confirm_window_s=30,
    reverse_not_before_s=15,
    reverse_interval_s=7,
    reverse_give_up_after_s=600,
    pay_retries=1,
    no_answer=NoAnswer.QUERY,
    follow_up_interval_s=60,
    follow_up_window_s=3600,
    qr_expiry_s=120,
    qr_follow_up_s=300,
)


def test_a_playbook_says_when_an_attempt_is_stuck() -> None:
    assert PLAYBOOK.final_by_s == 30 + 3 * 7
    assert PLAYBOOK.qr_final_by_s == 120 + 3 * 7
    late_reverse = Playbook(5, 2, 9, 3, 20, 4, 600, 0, NoAnswer.REVERSE)
    assert late_reverse.final_by_s == 20 + 3 * 9


def test_a_scaled_playbook_scales_every_duration_and_nothing_else() -> None:
    fast = PLAYBOOK.scaled(0.5)
    assert fast == Playbook(
        pay_timeout_s=5,
        query_timeout_s=1,
        query_interval_s=2.5,
        confirm_window_s=15,
        reverse_not_before_s=7.5,
        reverse_interval_s=3.5,
        reverse_give_up_after_s=300,
        pay_retries=1,
        no_answer=NoAnswer.QUERY,
        follow_up_interval_s=30,
        follow_up_window_s=1800,
        qr_expiry_s=60,
        qr_follow_up_s=150,
    )


def test_the_directory_knows_the_named_principals_and_each_terminal() -> None:
    access = AccessSettings(principals={"business": Role.BUSINESS, "audit": Role.AUDITOR})
    directory = Directory(access, {"T01": "W01", "T02": "W02"}, {"W01": "SP01", "W02": "SP02"})
    assert directory.get("T02") == Principal("T02", Role.TERMINAL, "W02", "SP02")
    assert directory.get("audit") == Principal("audit", Role.AUDITOR)
    assert directory.get("nobody") is None
    assert directory.names() == ["T01", "T02", "audit", "business"]
    assert not access.provisioned
    assert AccessSettings(ca_file="ca.pem").provisioned


def test_a_long_value_is_cut_in_the_refusal() -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_pattern("9" * 50, DIGITS_8, "day", "8 digits")
    assert refused.value.message == f"day {'9' * 40!r} must be 8 digits"
    with pytest.raises(InvalidArgument) as long_id:
        check_id("-" * 100, "order_id")
    assert long_id.value.message.startswith(f"order_id {'-' * 80!r} must be")


def test_the_single_use_key_is_the_first_half_of_the_codes_sha256() -> None:
    # sha256("134567890123456789") = e4f7aec5e5696b8f9c1fedd731b2b35de77cdc1f...
    assert auth_code_digest("134567890123456789") == "e4f7aec5e5696b8f9c1fedd731b2b35d"


def test_a_channels_rule_refuses_other_shapes_with_its_description() -> None:
    rule = AuthCodeRule(re.compile(r"62[0-9]{14}", re.ASCII), "16 digits starting 62", "62", 16)
    rule.check("UNIONPAY", "6212345678901234")
    for bad in ("621234567890123", "6212345678901234\n", "7212345678901234"):
        with pytest.raises(InvalidArgument) as refused:
            rule.check("UNIONPAY", bad)
        assert refused.value.message == "UNIONPAY auth code must be 16 digits starting 62"


def test_the_business_day_is_the_zones_not_utcs() -> None:
    # 2027-01-15 23:00 UTC is 07:00 on the 16th in China: past the 06:00 end of that day
    now = int(datetime(2027, 1, 15, 23, 0, tzinfo=UTC).timestamp() * 1000)
    expected = int(datetime(2027, 1, 16, 22, 0, tzinfo=UTC).timestamp() * 1000)
    assert expiry_after(now, time(6, 0), CHINA) == expected
