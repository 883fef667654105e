import pytest

from orchestrator.channels.registry import check_auth_code
from orchestrator.domain.auth_codes import auth_code_digest, mask_auth_code
from orchestrator.domain.errors import InvalidArgument
from orchestrator.domain.states import Channel


@pytest.mark.parametrize(
    ("channel", "code"),
    [
        (Channel.WECHAT, "134567890123450000"),
        (Channel.WECHAT, "104567890123451111"),
        (Channel.ALIPAY, "2812345678900000"),
        (Channel.ALIPAY, "301234567890123456789012"),
        (Channel.UNIONPAY, "6212345678901230000"),
        (Channel.CASH, ""),
    ],
)
def test_well_formed_codes_pass(channel: Channel, code: str) -> None:
    check_auth_code(channel, code)


# docs/DOMAIN.md §5: each channel's payment-code format, named in the refusal.
REFUSAL = {
    Channel.WECHAT: "WECHAT auth code must be 18 digits starting 10 to 15",
    Channel.ALIPAY: "ALIPAY auth code must be 16 to 24 digits starting 25 to 30",
    Channel.UNIONPAY: "UNIONPAY auth code must be 16 to 19 digits starting 62",
    Channel.CASH: "a cash payment takes no auth code",
}


@pytest.mark.parametrize(
    ("channel", "code"),
    [
        (Channel.WECHAT, "164567890123450000"),  # prefix 16
        (Channel.WECHAT, "13456789012345000"),  # 17 digits
        (Channel.WECHAT, "13456789012345000a"),
        (Channel.ALIPAY, "2412345678900000"),  # prefix 24
        (Channel.ALIPAY, "281234567890000"),  # 15 digits
        (Channel.UNIONPAY, "6312345678901230000"),
        (Channel.WECHAT, ""),
        (Channel.CASH, "134567890123450000"),
    ],
)
def test_malformed_codes_are_refused(channel: Channel, code: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^{REFUSAL[channel]}$"):
        check_auth_code(channel, code)


def test_masking_keeps_only_the_ends() -> None:
    assert mask_auth_code("134567890123450000") == "1345**********0000"
    assert auth_code_digest("134567890123450000") != auth_code_digest("134567890123450001")
    assert "134567890123450000" not in auth_code_digest("134567890123450000")
