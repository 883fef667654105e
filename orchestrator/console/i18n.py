"""The console's languages: Babel's gettext catalogs (compiled by the Makefile from the
`.po` files under locales/), and dates, times and amounts in each language's own form.
Chinese (zh_CN) first; a request gets the account's choice, else the language switch's
cookie, else the browser's Accept-Language."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from pathlib import Path

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent
from babel.support import NullTranslations, Translations

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"
DEFAULT = "zh_CN"
# Each language as the switch offers it: named in its own language.
LANGUAGES: Mapping[str, str] = {"zh_CN": "中文", "en": "English"}
# The first Accept-Language tag that names one of these (lower case, '-' separated, or
# its first part) picks the language: every written Chinese gets the Chinese pages.
_TAGS = {"zh": "zh_CN", "en": "en"}


class CatalogMissing(RuntimeError):
    """A language's compiled catalog (.mo) is absent: `make catalogs` compiles them."""


@dataclass(frozen=True)
class Language:
    code: str  # zh_CN, en: Babel's name, and the catalog's folder
    translations: NullTranslations
    zone: tzinfo

    @property
    def tag(self) -> str:
        """The HTML `lang` value (BCP 47)."""
        return self.code.replace("_", "-")

    @property
    def own_name(self) -> str:
        return LANGUAGES[self.code]

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)

    def money(self, fen: int | None) -> str:
        """¥1,870.00 (CN¥ in English, as the CLDR writes it)."""
        return format_currency(Decimal(int(fen or 0)).scaleb(-2), "CNY", locale=self.code)

    def number(self, value: int | float | Decimal) -> str:
        return format_decimal(value, locale=self.code)

    def percent(self, ratio: float, *, signed: bool = False) -> str:
        """+12% (signed: a change, its sign always written)."""
        text = format_percent(ratio, locale=self.code)
        return f"+{text}" if signed and ratio > 0 else text

    def day(self, value: date | str | None) -> str:
        """2026年12月7日 / December 7, 2026."""
        if not value:
            return ""
        if isinstance(value, str):
            value = date.fromisoformat(value)
        return format_date(value, "long", locale=self.code)

    def moment(self, ms: int | None) -> str:
        """An epoch-millisecond time in the console's zone: 2026年12月7日 14:03:05."""
        if not ms:
            return ""
        when = datetime.fromtimestamp(ms / 1000, self.zone)
        return format_datetime(when, "medium", tzinfo=self.zone, locale=self.code)


def load(zone: tzinfo, directory: Path = LOCALES_DIR) -> dict[str, Language]:
    """Every language, from its compiled catalog; a missing one stops the console at
    start rather than showing untranslated pages."""
    languages = {}
    for code in LANGUAGES:
        mo = directory / code / "LC_MESSAGES" / f"{DOMAIN}.mo"
        if not mo.is_file():
            raise CatalogMissing(f"{mo} is missing: compile the catalogs (make catalogs)")
        with mo.open("rb") as compiled:
            languages[code] = Language(code, Translations(compiled, domain=DOMAIN), zone)
    return languages


def from_accept_language(header: str) -> str:
    """The language an Accept-Language header prefers among ours, else the default."""
    ranked = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, position, tag.strip().lower().replace("_", "-")))
    for _, _, tag in sorted(ranked):
        code = _TAGS.get(tag) or _TAGS.get(tag.split("-")[0])
        if code:
            return code
    return DEFAULT


def chosen(*choices: str | None) -> str:
    """The first of the choices that names one of our languages."""
    return next((c for c in choices if c is not None and c in LANGUAGES), DEFAULT)
