"""A test-only counterpart of UnionPay's ACP 5.1.0 gateway, written from the ACP SDK's
documented behaviour, not from windowpay's code (no Python SDK of ACP exists):

* it reads a synchronous answer as the SDK's `SDKUtil.parseQString` does: split on `&`
  and the first `=`, nothing decoded, `{...}` and `[...]` kept whole (`read_raw`);
* it signs what the SDK's `coverMap2String` builds (every field but `signature`,
  sorted, empty ones included), signMethod 01: RSA-SHA256 over the SHA-256 hex digest;
* it answers raw, unencoded, with signPubKeyCert and no certId, from the public
  samples' own field sets (`answer_from`);
* it checks windowpay's requests as the gateway does: a form POST, certId the serial
  (decimal) of the merchant certificate it has on file, blank fields left out, the
  signature over the same digest.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

WIRE = Path(__file__).resolve().parents[2] / "fixtures" / "wire" / "unionpay"
# The raw answers signed by UnionPay's test environment (SOURCES.md).
SIGNED_ANSWERS = (
    "answer_query_paid.txt",
    "answer_void.txt",
    "answer_refund.txt",
    "answer_query_unpaid.txt",
    "answer_query_not_found.txt",
)


def sample_text(name: str) -> str:
    """A sample exactly as stored (its CRLFs kept)."""
    return (WIRE / name).read_bytes().decode("utf-8")


def read_raw(text: str) -> dict[str, str]:
    """The SDK's reading of a raw answer (parseQString)."""
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    out: dict[str, str] = {}
    key, buffer, in_key, closer = "", "", True, ""
    for char in text:
        if in_key:
            if char == "=":
                key, buffer, in_key = buffer, "", False
            else:
                buffer += char
            continue
        if closer and char == closer:
            closer = ""
        elif not closer and char in "{[":
            closer = "}" if char == "{" else "]"
        if char == "&" and not closer:
            out[key], buffer, in_key = buffer, "", True
        else:
            buffer += char
    if in_key:
        out[buffer] = ""
    else:
        out[key] = buffer
    return out


def signed_digest(fields: Mapping[str, str]) -> bytes:
    text = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if k != "signature")
    return hashlib.sha256(text.encode("utf-8")).hexdigest().encode("ascii")


def sign_fields(key: rsa.RSAPrivateKey, fields: Mapping[str, str]) -> str:
    raw = key.sign(signed_digest(fields), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode("ascii")


def signature_holds(public: rsa.RSAPublicKey, fields: Mapping[str, str]) -> bool:
    try:
        raw = base64.b64decode(fields.get("signature", ""), validate=True)
        public.verify(raw, signed_digest(fields), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def write_raw(fields: Mapping[str, str]) -> str:
    """The gateway's answer text: sorted fields, then signPubKeyCert and signature, as
    the samples list them; nothing encoded."""
    head = [f"{k}={v}" for k, v in sorted(fields.items()) if k not in SIGNING_FIELDS]
    tail = [f"{k}={fields[k]}" for k in SIGNING_FIELDS if k in fields]
    return "&".join(head + tail)


SIGNING_FIELDS = ("signPubKeyCert", "signature")


@dataclass
class Signer:
    """The gateway's signing key and the certificate it sends as signPubKeyCert."""

    key: rsa.RSAPrivateKey
    certificate_pem: str

    def signed(self, fields: Mapping[str, str]) -> dict[str, str]:
        out = {k: v for k, v in fields.items() if k not in SIGNING_FIELDS}
        out["signPubKeyCert"] = self.certificate_pem
        out["signature"] = sign_fields(self.key, out)
        return out


def answer_from(sample: str, signer: Signer, **overrides: str) -> str:
    """A sample's answer for another request: its fields, the request's values laid over
    them, signed afresh, written raw."""
    fields = read_raw(sample_text(sample))
    fields.update(overrides)
    return write_raw(signer.signed(fields))


# What a request's txnType/txnSubType is answered with (sample name), and which of the
# request's fields the answer repeats.
ECHOED = ("orderId", "txnTime", "merId", "txnAmt", "encoding", "accessType", "bizType")
Script = Callable[[dict[str, str]], str]


@dataclass
class AcpGateway:
    """The counterpart's HTTP side: posts to backTransReq.do / queryTrans.do /
    fileTransReq.do, each answered by a script (request fields -> sample name)."""

    signer: Signer
    merchant_certificate: bytes  # PEM, the one on file
    script: dict[str, Script] = field(default_factory=dict)
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    received: list[dict[str, str]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    amounts: dict[str, str] = field(default_factory=dict)  # orderId -> its txnAmt

    def app(self) -> web.Application:
        app = web.Application()
        for path in ("backTransReq.do", "queryTrans.do", "fileTransReq.do"):
            app.router.add_post(f"/gateway/api/{path}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("application/x-www-form-urlencoded"):
            self.refused.append(f"content type {request.content_type}")
        fields = dict(parse_qsl((await request.read()).decode("utf-8"), keep_blank_values=True))
        self._check(fields)
        self.received.append(fields)
        kind = f"{fields.get('txnType')}/{fields.get('txnSubType')}"
        sample = self.script[kind](fields)
        echoed = {k: fields[k] for k in ECHOED if k in fields}
        order_id = fields.get("orderId", "")
        if fields.get("txnType") == "00":  # a query answers with the original's fields
            echoed = {k: v for k, v in echoed.items() if k in ("orderId", "txnTime", "merId")}
            if order_id in self.amounts:
                echoed["txnAmt"] = self.amounts[order_id]
        elif "txnAmt" in fields:
            self.amounts.setdefault(order_id, fields["txnAmt"])
        extra = self.overrides.get(order_id, {})
        return web.Response(
            body=answer_from(sample, self.signer, **{**echoed, **extra}).encode("utf-8"),
            content_type="text/plain",
            charset="utf-8",
        )

    def _check(self, fields: dict[str, str]) -> None:
        certificate = x509.load_pem_x509_certificate(self.merchant_certificate)
        public = certificate.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        problems = []
        if fields.get("certId") != str(certificate.serial_number):
            problems.append("certId is not the merchant certificate's serial")
        if any(not v.strip() or v != v.strip() for v in fields.values()):
            problems.append("a blank or untrimmed field was sent")
        if fields.get("version") != "5.1.0" or fields.get("signMethod") != "01":
            problems.append("not version 5.1.0 / signMethod 01")
        if not signature_holds(public, fields):
            problems.append("signature does not verify")
        self.refused.extend(problems)


def file_content(zip_bytes: bytes) -> str:
    """fileContent as the SDK's deCodeFileContent undoes it: base64 of zlib-deflated."""
    return base64.b64encode(zlib.compress(zip_bytes)).decode("ascii")
