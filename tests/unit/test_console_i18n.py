"""The console's languages: every string of the templates and the code is in every
catalog (extracted with Babel as `make translations` does, and compared), Chinese has a
translation for each, the compiled catalogs match their sources, every code the record
holds has a name, and amounts and dates are written as each language writes them."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from orchestrator.config import ConfigError, load_config, parse_config
from orchestrator.console import i18n
from orchestrator.console.accounts import Role
from orchestrator.console.labels import KINDS, label
from orchestrator.console.pages import FeeNames
from orchestrator.domain.states import AttemptState, Channel, OrderState, RefundState
from orchestrator.reconcile.matcher import Kind
from tests.support import sample_data

CONSOLE = Path(i18n.__file__).parent
ZONE = ZoneInfo("Asia/Shanghai")


def extracted(console: Path) -> set[str]:
    """The message ids `pybabel extract -F babel.cfg` finds (a plural by its singular)."""
    with (console / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found = set()
    for _, _, message, _, _ in extract_from_dir(str(console), method_map, options_map):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def catalog(code: str, locales: Path = CONSOLE / "locales") -> dict[str, object]:
    with (locales / code / "LC_MESSAGES" / "messages.po").open("rb") as po:
        parsed = read_po(po, locale=code)
    problems = [f"{m.id!r}: {errors}" for m, errors in parsed.check()]
    assert not problems, f"{code}: {problems}"
    return {
        (m.id[0] if isinstance(m.id, tuple) else m.id): m
        for m in parsed
        if m.id and "fuzzy" not in m.flags
    }


def differences(console: Path) -> dict[str, tuple[set[str], set[str]]]:
    """Per language: (in the source but not the catalog, in the catalog but no longer
    in the source)."""
    strings = extracted(console)
    out = {}
    for code in i18n.LANGUAGES:
        ids = set(catalog(code, console / "locales"))
        out[code] = (strings - ids, ids - strings)
    return out


@pytest.fixture(scope="module")
def languages() -> dict[str, i18n.Language]:
    return i18n.load(ZONE)


def test_every_string_of_the_templates_and_code_is_in_every_catalog() -> None:
    assert len(extracted(CONSOLE)) > 150  # the extraction reads the templates
    for code, (missing, stale) in differences(CONSOLE).items():
        assert not missing, f"{code} lacks {sorted(missing)}: run `make translations`"
        assert not stale, f"{code} keeps strings no page uses: {sorted(stale)}"


def test_a_template_string_missing_from_the_catalogs_fails(tmp_path: Path) -> None:
    """The comparison above, on a copy of the console with one new string."""
    copy = tmp_path / "console"
    shutil.copytree(CONSOLE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "templates" / "new.html").write_text('<p>{{ _("A string no catalog has") }}</p>')
    found = differences(copy)
    assert found == {code: ({"A string no catalog has"}, set()) for code in i18n.LANGUAGES}


def test_chinese_translates_every_string() -> None:
    untranslated = [
        key
        for key, message in catalog("zh_CN").items()
        if not message.string or (isinstance(message.string, tuple) and not all(message.string))  # type: ignore[attr-defined]
    ]
    assert untranslated == []


def test_the_compiled_catalogs_are_those_of_the_sources(
    languages: dict[str, i18n.Language],
) -> None:
    for key, message in catalog("zh_CN").items():
        expected = message.string  # type: ignore[attr-defined]
        if isinstance(expected, tuple):
            assert languages["zh_CN"].ngettext(key, key, 1) == expected[0]
        else:
            assert languages["zh_CN"].gettext(key) == expected, "run `make catalogs`"


def test_a_missing_compiled_catalog_stops_the_console(tmp_path: Path) -> None:
    with pytest.raises(i18n.CatalogMissing, match="make catalogs"):
        i18n.load(ZONE, tmp_path)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", "zh_CN"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh_CN"),
        ("en-US,en;q=0.9", "en"),
        ("fr-FR,fr;q=0.9,en;q=0.5", "en"),
        ("fr, de", "zh_CN"),
        ("zh-TW", "zh_CN"),
        ("en;q=0.2, zh-Hans;q=0.8", "zh_CN"),
        ("en;q=0, zh;q=0.1", "zh_CN"),
        ("EN-gb", "en"),
        ("en;q=oops, zh", "zh_CN"),
    ],
)
def test_the_browsers_language(header: str, expected: str) -> None:
    assert i18n.from_accept_language(header) == expected


def test_the_account_and_the_switch_come_before_the_browser() -> None:
    assert i18n.chosen("en", "zh_CN", "zh_CN") == "en"
    assert i18n.chosen("", "en", "zh_CN") == "en"
    assert i18n.chosen(None, "klingon", "en") == "en"
    assert i18n.chosen(None, None) == "zh_CN"


def test_amounts_dates_and_times_in_each_language(languages: dict[str, i18n.Language]) -> None:
    zh, en = languages["zh_CN"], languages["en"]
    assert zh.money(187000) == "¥1,870.00"
    assert zh.money(-550) == "-¥5.50"
    assert en.money(187000) == "CN¥1,870.00"
    assert zh.day(date(2026, 12, 7)) == "2026年12月7日"
    assert en.day("2026-12-07") == "December 7, 2026"
    ms = 1_796_623_385_000  # 2026-12-07 14:03:05 in Shanghai
    assert zh.moment(ms) == "2026年12月7日 14:03:05"
    assert en.moment(ms) == "Dec 7, 2026, 2:03:05\u202fPM"
    assert zh.percent(0.125, signed=True) == "+12%"
    assert zh.percent(-0.5, signed=True) == "-50%"
    assert (zh.tag, en.tag) == ("zh-CN", "en")


def test_every_code_of_the_record_has_a_name_in_chinese(
    languages: dict[str, i18n.Language],
) -> None:
    zh = languages["zh_CN"]
    codes = {
        "order": list(OrderState),
        "attempt": list(AttemptState),
        "refund": list(RefundState),
        "channel": list(Channel),
        "role": list(Role),
        "difference": list(Kind),
    }
    for kind, values in codes.items():
        for value in values:
            if kind != "channel":  # provider channels are named by their packages
                assert value.value in KINDS[kind], f"{kind} {value.value} has no name"
            name = label(zh, kind, value.value)
            assert name and all(not c.isascii() or c.isspace() for c in name), (kind, name)
    named = {c: label(zh, "channel", c) for c in ("WECHAT", "ALIPAY", "UNIONPAY", "CASH")}
    assert named == {"WECHAT": "微信支付", "ALIPAY": "支付宝", "UNIONPAY": "银联", "CASH": "现金"}
    assert label(zh, "order", "PAID") == "已缴费"
    assert label(zh, "order", "SOMETHING_NEW") == "SOMETHING_NEW"


def test_a_receipts_state_reads_as_a_state(languages: dict[str, i18n.Language]) -> None:
    """The payer's page writes the issue time and then the receipt's state: an issued
    receipt is 已开具, not 开票时间 (the heading of the time beside it)."""
    zh = languages["zh_CN"]
    states = {code: label(zh, "receipt", code) for code in ("ISSUED", "PARTIALLY_REFUNDED",
                                                            "REFUNDED")}  # fmt: skip
    assert states == {"ISSUED": "已开具", "PARTIALLY_REFUNDED": "部分退费", "REFUNDED": "已退费"}


def test_fee_items_carry_their_official_chinese_names(languages: dict[str, i18n.Language]) -> None:
    fees = FeeNames.of(load_config())
    assert len(fees.names) == 18
    zh, en = languages["zh_CN"], languages["en"]
    assert fees.name(zh, "PLT-AUTO") == "号牌工本费（汽车反光号牌）"
    assert fees.name(zh, "DOC-VLIC") == "行驶证工本费"
    for code, (chinese, english) in fees.names.items():
        assert chinese.endswith(("费", "）")) and "费" in chinese, (code, chinese)
        assert english and english.isascii(), code
    assert fees.name(zh, "DOC-VLIC", "行驶证") == "行驶证"  # a line keeps its own name
    assert fees.name(en, "DOC-VLIC", "行驶证") == "Vehicle licence fee"
    assert fees.name(en, "XX-NEW", "新项目") == "新项目"
    assert fees.name(zh, "XX-NEW") == "XX-NEW"


def test_the_config_requires_a_chinese_name_and_a_dialable_office_phone() -> None:
    data = sample_data()
    data["catalogs"][0]["items"][0]["name"] = " "
    with pytest.raises(ConfigError, match=r"items\[0\]\.name"):
        parse_config(data)
    data = sample_data()
    del data["catalogs"][0]["items"][0]["name_en"]
    assert parse_config(data).fees.catalogs[0].items["PLT-AUTO"].name_en == ""
    data["office"]["phone"] = "call us"
    with pytest.raises(ConfigError, match=r"office\.phone"):
        parse_config(data)
    del data["office"]
    office = parse_config(data).office
    assert (office.name, office.phone) == ("昆明市公安局交通管理支队车辆管理所", "")
    assert load_config().office.phone == "0871-00000000"


def test_a_provider_channel_is_named_by_its_package(
    languages: dict[str, i18n.Language], monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.channels import registry

    wechat = registry.CHANNELS[Channel.WECHAT]
    assert label(languages["zh_CN"], "channel", "WECHAT") == wechat.display_name == "微信支付"
    assert label(languages["en"], "channel", "WECHAT") == wechat.english_name == "WeChat Pay"
    assert label(languages["en"], "channel", "ALIPAY") == "Alipay"
    monkeypatch.setitem(registry.CHANNELS, Channel.WECHAT, replace(wechat, english_name=""))
    assert label(languages["en"], "channel", "WECHAT") == "微信支付"  # no English name yet
    assert label(languages["en"], "channel", "CASH") == "Cash"
    assert label(languages["en"], "channel", "NOPAY") == "NOPAY"
