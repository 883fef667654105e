"""Identifiers and codes are matched whole and in ASCII; names refuse invisible tricks."""

from __future__ import annotations

import pytest

from orchestrator.channels.registry import check_auth_code
from orchestrator.domain.errors import InvalidArgument
from orchestrator.domain.states import Channel
from orchestrator.domain.validation import check_id, check_text

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@pytest.mark.parametrize("value", ["B1\n", "B1\r\n", "\nB1", "B1 ", "B١", "Ｂ1", "B1\x00"])
def test_ids_are_matched_whole_and_in_ascii(value: str) -> None:
    with pytest.raises(InvalidArgument, match=r"^business_no .* must be 1-64 letters, digits"):
        check_id(value, "business_no")
    assert check_id("B1", "business_no") == "B1"


@pytest.mark.parametrize(
    ("channel", "code"),
    [
        (Channel.WECHAT, "134567890123450000"),
        (Channel.ALIPAY, "280000000000000000"),
        (Channel.UNIONPAY, "6212345678901234"),
    ],
)
def test_auth_codes_in_other_digits_or_with_a_newline_are_refused(
    channel: Channel, code: str
) -> None:
    check_auth_code(channel, code)
    for variant in (
        code.translate(ARABIC_INDIC),
        code[:2] + code[2:].translate(ARABIC_INDIC),
        code[:-1] + code[-1].translate(FULL_WIDTH),
        code + "\n",
    ):
        with pytest.raises(InvalidArgument, match=f"^{channel} auth code must be "):
            check_auth_code(channel, variant)


@pytest.mark.parametrize(
    "name",
    [
        "张三\u202e",  # right-to-left override
        "\u2066张三\u2069",  # isolates
        "张\u200b三",  # zero-width space
        "张三\x1b[31m",  # an escape sequence
        "张三\u2028",  # line separator
        "张三\ue000",  # private use
    ],
)
def test_names_with_control_or_bidi_characters_are_refused(name: str) -> None:
    with pytest.raises(
        InvalidArgument, match=r"^payer_name contains control, format or bidi characters$"
    ):
        check_text(name, "payer_name", required=True, limit=64)
    assert check_text("欧阳·娜娜", "payer_name", required=True, limit=64)
