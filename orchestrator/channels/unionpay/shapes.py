"""Which fields the sandbox gateway's answers and notifications carry, per kind: those of
the real gateway's public samples (tests/fixtures/wire/unionpay/SOURCES.md says which
sample each set comes from, and which sets are read from the specification because no
signed sample was found). The real answers list their fields in name order and end
with signPubKeyCert and signature; the sandbox writes them the same way.

The conformance suite checks the sandbox against the samples themselves, not against
this table."""

from __future__ import annotations

from collections.abc import Mapping

_COMMON = ("accessType", "bizType", "encoding", "merId", "orderId", "respCode", "respMsg",
           "signMethod", "txnSubType", "txnTime", "txnType", "version")  # fmt: skip

FIELDS: dict[str, frozenset[str]] = {
    # 消费 (payer-presented code) and 申码: no signed sample; the answer fields of the spec
    "sale": frozenset({*_COMMON, "queryId", "txnAmt"}),
    "apply_qr": frozenset({*_COMMON, "txnAmt", "qrCode"}),
    "reversal": frozenset(_COMMON),
    # 消费撤销 and 退货: as the signed test-environment answers
    "void": frozenset({*_COMMON, "origQryId", "queryId", "txnAmt"}),
    "refund": frozenset({*_COMMON, "origQryId", "queryId", "txnAmt"}),
    # 交易状态查询: as the signed test-environment answer (card fields left out)
    "query": frozenset(
        {
            *_COMMON,
            "currencyCode",
            "origRespCode",
            "origRespMsg",
            "queryId",
            "settleAmt",
            "txnAmt",
        }
    ),
    "file": frozenset({*_COMMON, "fileContent", "fileName", "fileType", "settleDate"})
    - {"orderId"},
    # 后台通知 of a sale: as the signed test-environment notification (card fields left
    # out); a void's or refund's also names its sale (origQryId)
    "notify": frozenset({*_COMMON, "currencyCode", "origQryId", "queryId", "settleAmt", "txnAmt"}),
    "error": frozenset(_COMMON),
}


def answer_fields(kind: str, given: Mapping[str, str]) -> dict[str, str]:
    """The fields of `given` that an answer of `kind` carries (the non-empty ones), in
    name order; the caller appends signPubKeyCert and signature."""
    allowed = FIELDS[kind]
    return {key: given[key] for key in sorted(given) if key in allowed and given[key]}
