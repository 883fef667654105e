"""Who windowpay is at WeChat Pay: a merchant of its own (直连商户: mchid, appid), or a
partner (服务商: sp_mchid, sp_appid) acting for one sub-merchant (特约商户: sub_mchid, and
sub_appid when the sub-merchant has an app of its own). The partner signs every request
with its own key and certificate; the trades are the sub-merchant's.

The two modes differ only in the paths (/v3/pay/partner/transactions/...), the ids a
request carries and the ids an answer or a notification must name (docs/PROVIDERS.md,
"Partner mode")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.providers.port import check_bound

DIRECT_TRANSACTIONS = "/v3/pay/transactions"
PARTNER_TRANSACTIONS = "/v3/pay/partner/transactions"


@dataclass(frozen=True)
class Account:
    mchid: str  # the merchant's, or in partner mode the partner's (sp_mchid)
    appid: str  # appid, or sp_appid
    sub_mchid: str = ""  # set: partner mode, for this sub-merchant
    sub_appid: str = ""

    @property
    def partner(self) -> bool:
        return bool(self.sub_mchid)

    def transactions(self, tail: str) -> str:
        """The path of a payment call: /v3/pay/[partner/]transactions/<tail>."""
        return f"{PARTNER_TRANSACTIONS if self.partner else DIRECT_TRANSACTIONS}/{tail}"

    def ids(self) -> dict[str, str]:
        """The ids a codepay, Native or reverse body carries."""
        if not self.partner:
            return {"appid": self.appid, "mchid": self.mchid}
        ids = {"sp_appid": self.appid, "sp_mchid": self.mchid, "sub_mchid": self.sub_mchid}
        if self.sub_appid:
            ids["sub_appid"] = self.sub_appid
        return ids

    def merchant_ids(self) -> dict[str, str]:
        """The ids a close body carries (no appid)."""
        if not self.partner:
            return {"mchid": self.mchid}
        return {"sp_mchid": self.mchid, "sub_mchid": self.sub_mchid}

    def query(self) -> str:
        """The query string of a trade query."""
        if not self.partner:
            return f"mchid={self.mchid}"
        return f"sp_mchid={self.mchid}&sub_mchid={self.sub_mchid}"

    def sub_merchant(self) -> dict[str, str]:
        """What a refund body carries besides the trade ({} for a direct merchant)."""
        return {"sub_mchid": self.sub_mchid} if self.partner else {}

    def sub_merchant_query(self, separator: str) -> str:
        """`?sub_mchid=...` (or with `&`) for refund queries and bills; "" when direct."""
        return f"{separator}sub_mchid={self.sub_mchid}" if self.partner else ""

    def check_named(self, payload: Mapping[str, Any]) -> None:
        """AnswerMismatch unless a trade answer or notification names this account."""
        if not self.partner:
            check_bound("mchid", self.mchid, payload.get("mchid"))
            return
        check_bound("sp_mchid", self.mchid, payload.get("sp_mchid"))
        check_bound("sub_mchid", self.sub_mchid, payload.get("sub_mchid"))
