"""UnionPay ACP 5.1.0 on the wire, as UnionPay's ACP SDK reads and writes it
(docs/PROVIDERS.md, "UnionPay ACP"):

* A synchronous answer is raw `k=v&k=v` text. Nothing in it is URL-decoded: a `+` in
  `signature` or in the PEM of `signPubKeyCert` stays a `+`. A field ends at the first
  `&` after its first `=`, except inside a value's `{...}` or `[...]`, which may hold `&`
  (the SDK's own reader skips to the closing bracket, without counting nesting). The
  whole text may itself be wrapped in one pair of braces.
* A notification (backUrl) is an ordinary form POST and is form-decoded.
* The signed text is every field but `signature`, sorted by name, joined `k=v&...`,
  empty values included; windowpay's own requests drop blank fields (and trim values)
  before signing and sending, as the SDK does. Signature method 01 signs the SHA-256
  hex digest of that text (RSA PKCS#1 v1.5, SHA-256).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

SIGNATURE = "signature"
_CLOSING = {"{": "}", "[": "]"}


class AnswerFormatError(ValueError):
    """Text that is no ACP answer: a field with no name."""


def parse_answer(text: str) -> dict[str, str]:
    """The fields of a raw synchronous answer, read as the SDK reads them."""
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    fields: dict[str, str] = {}
    if not text:
        return fields
    key: str | None = None
    part: list[str] = []
    closing = ""
    for char in text:
        if key is None:
            if char == "=":
                key, part = "".join(part), []
            else:
                part.append(char)
            continue
        if closing:
            closing = "" if char == closing else closing
        elif char in _CLOSING:
            closing = _CLOSING[char]
        if char == "&" and not closing:
            _put(fields, key, "".join(part))
            key, part = None, []
        else:
            part.append(char)
    if key is None:
        _put(fields, "".join(part), "")
    else:
        _put(fields, key, "".join(part))
    return fields


def _put(fields: dict[str, str], key: str, value: str) -> None:
    if not key:
        raise AnswerFormatError("an answer field has no name")
    fields[key] = value


def render_answer(fields: Mapping[str, str]) -> str:
    """Fields as the gateway writes an answer: raw `k=v&...`, nothing encoded."""
    return "&".join(f"{key}={value}" for key, value in fields.items())


def signed_text(fields: Mapping[str, str]) -> str:
    """What signature 01 covers: all fields but the signature, sorted, empty ones too."""
    return "&".join(f"{key}={fields[key]}" for key in sorted(fields) if key != SIGNATURE)


def digest(fields: Mapping[str, str]) -> bytes:
    """The SHA-256 hex digest of the signed text, the message the RSA signature covers."""
    return hashlib.sha256(signed_text(fields).encode("utf-8")).hexdigest().encode()


def without_blanks(fields: Mapping[str, str]) -> dict[str, str]:
    """A request as the SDK sends it: blank fields left out, values trimmed."""
    return {key: value.strip() for key, value in fields.items() if value.strip()}


def holder_name(common_name: str) -> str:
    """The certificate holder's name as the SDK reads it from the CN: the third of its
    `@`-separated parts (`041@Z12@00040000:SIGN@00000062` -> `00040000:SIGN`). The SDK
    splits the whole subject from `CN=` on, so a CN of fewer than four parts would carry
    the rest of the subject into the name: it names nobody."""
    parts = common_name.split("@")
    return parts[2] if len(parts) > 3 else ""
