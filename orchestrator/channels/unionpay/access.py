"""How windowpay reaches UnionPay: directly as a merchant (accessType 0), or through an
acquirer (accessType 1, 收单机构接入). UnionPay's ACP demo note for acquirers
(机构接入需做改动) lists what changes for the latter: every transaction but the batch
ones carries acqInsCode (the acquirer's institution code), merCatCode (the merchant's
MCC), merName and merAbbr, whose production values the acquirer assigns; the signing
certificate is the acquirer's institution certificate (acp_sign.pfx holds it then); and
the settlement file is not served online (the download answers 98): the acquirer's
ACOMN file, fetched offline, is what reconciles. docs/PROVIDERS.md has the checklist."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.config import Credentials
from orchestrator.providers.keys import KeyMaterialError


@dataclass(frozen=True)
class Access:
    acquirer: str = ""  # acqInsCode; empty: the merchant's own direct access
    category: str = ""  # merCatCode
    name: str = ""  # merName
    abbreviation: str = ""  # merAbbr

    @property
    def through_acquirer(self) -> bool:
        return bool(self.acquirer)

    def fields(self) -> dict[str, str]:
        if not self.through_acquirer:
            return {"accessType": "0"}
        return {
            "accessType": "1",
            "acqInsCode": self.acquirer,
            "merCatCode": self.category,
            "merName": self.name,
            "merAbbr": self.abbreviation,
        }


DIRECT = Access()
SETTINGS = ("acquirer_id", "merchant_category_id", "merchant_name", "merchant_abbr_name")


def access_from(credentials: Credentials) -> Access:
    """The access the config names: all four acquirer settings, or none of them."""
    values = [credentials[name] for name in SETTINGS]
    if any(values) and not all(values):
        missing = [name for name, value in zip(SETTINGS, values, strict=True) if not value]
        raise KeyMaterialError(f"UnionPay through an acquirer also needs {', '.join(missing)}")
    return Access(*values)
