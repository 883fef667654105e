"""Receipt codes, check codes and amounts in words (docs/DOMAIN.md §8).

Receipt code: 8 digits, region (2) + class (2) + type (2) + year (2). Receipt number:
10 digits, gap-free per code (allocated in Redis). Check code: 6 characters from an HMAC
of the receipt's identity with the issuer's secret, so a forged one does not match.
"""

from __future__ import annotations

import hashlib
import hmac

CHECK_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O: read aloud and typed


def receipt_code(region: str, kind: str, form: str, year: int) -> str:
    code = f"{region}{kind}{form}{year % 100:02d}"
    if len(code) != 8 or not code.isdigit():
        raise ValueError(f"a receipt code is 8 digits, got {code!r}")
    return code


def receipt_no(sequence: int) -> str:
    if not 0 < sequence < 10**10:
        raise ValueError(f"receipt sequence {sequence} out of range")
    return f"{sequence:010d}"


def check_code(secret: bytes, code: str, number: str, order_id: str, total_fen: int) -> str:
    digest = hmac.new(
        secret, f"{code}|{number}|{order_id}|{total_fen}".encode(), hashlib.sha256
    ).digest()
    value = int.from_bytes(digest[:8], "big")
    chars = []
    for _ in range(6):
        value, index = divmod(value, len(CHECK_ALPHABET))
        chars.append(CHECK_ALPHABET[index])
    return "".join(chars)


_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_SMALL_UNITS = ["", "拾", "佰", "仟"]
_BIG_UNITS = ["", "万", "亿", "兆"]


def _four_digits(number: int) -> str:
    """0..9999 in words, with 零 for inner gaps ('壹仟零伍')."""
    text, zero = "", False
    for position in range(3, -1, -1):
        digit = number // 10**position % 10
        if digit == 0:
            zero = bool(text)
            continue
        if zero:
            text += "零"
            zero = False
        text += _DIGITS[digit] + _SMALL_UNITS[position]
    return text


def yuan_in_words(fen: int) -> str:
    """人民币大写 of an amount in fen: 12000 -> '壹佰贰拾元整', 10005 -> '壹佰元零伍分'."""
    if fen < 0:
        return "负" + yuan_in_words(-fen)
    yuan, cents = divmod(fen, 100)
    jiao, fen_digit = divmod(cents, 10)
    groups = []
    while yuan:
        yuan, group = divmod(yuan, 10_000)
        groups.append(group)
    words, need_zero = "", False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            need_zero = bool(words)
            continue
        if words and (need_zero or group < 1000):
            words += "零"
        words += _four_digits(group) + _BIG_UNITS[index]
        need_zero = False
    if words:
        words += "元"
    if jiao == 0 and fen_digit == 0:
        return (words or "零元") + "整"
    if jiao:
        words += _DIGITS[jiao] + "角"
    elif words:
        words += "零"
    if fen_digit:
        return words + _DIGITS[fen_digit] + "分"
    return words + "整"
