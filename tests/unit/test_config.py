from typing import Any

import pytest

from orchestrator.channels.alipay.wiring import seller_id
from orchestrator.config import ConfigError, load_config, parse_config
from orchestrator.domain.states import Channel
from tests.support import sample_data


def test_the_sample_deployment() -> None:
    config = load_config()
    deployment = config.deployment
    assert [sp.id for sp in deployment.service_points] == [f"SP{i:02d}" for i in range(1, 24)]
    assert sorted(deployment.window_service_point) == [f"W{i:02d}" for i in range(1, 51)]
    assert deployment.terminal_window == {f"T{i:02d}": f"W{i:02d}" for i in range(1, 51)}
    assert len(deployment.actor_groups(1)) == 23
    assert len(deployment.actor_groups(8)) == 3
    wechat = config.playbooks[Channel.WECHAT]
    assert (wechat.query_interval_s, wechat.confirm_window_s, wechat.reverse_not_before_s) == (
        5,
        45,
        15,
    )
    assert config.playbooks[Channel.ALIPAY].confirm_window_s == 30
    assert config.settings.redis_appendfsync == "always"
    assert config.notify_url(Channel.UNIONPAY) == "http://127.0.0.1:8471/notify/unionpay"


def test_a_deployment_overrides_a_channels_defaults_key_by_key() -> None:
    data = sample_data()
    data["channels"] = {"WECHAT": {"confirm_window_s": 50}}
    data["providers"]["WECHAT"] = {"base_url": "https://pay.example/", "merchant_id": "42"}
    config = parse_config(data)
    wechat = config.playbooks[Channel.WECHAT]
    assert (wechat.confirm_window_s, wechat.reverse_not_before_s) == (50, 15)
    settings = config.providers[Channel.WECHAT]
    assert (settings.base_url, settings.merchant_id, settings.app_id) == (
        "https://pay.example",
        "42",
        "wxd678efh567hg6787",
    )
    assert config.providers[Channel.ALIPAY].merchant_id == "2021000000000001"


def test_the_time_scale_shrinks_every_schedule() -> None:
    config = load_config().with_settings(time_scale=0.01)
    playbook = config.playbook(Channel.WECHAT)
    assert playbook.confirm_window_s == pytest.approx(0.45)
    assert playbook.pay_retries == 2


def broken(change: Any) -> str:
    data = sample_data()
    change(data)
    with pytest.raises(ConfigError) as info:
        parse_config(data, "windowpay.toml")
    return str(info.value)


def test_a_window_in_two_service_points_is_named() -> None:
    message = broken(lambda d: d["service_points"][1]["windows"].append("W01"))
    assert message.startswith("windowpay.toml.service_points[1].windows")
    assert "W01 already belongs to SP01" in message


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d["terminals"].update(T99="W99"), "terminals.T99: bound to unknown window W99"),
        (lambda d: d["catalogs"][0]["items"][0].update(price_fen=-1), "items[0].price_fen"),
        (lambda d: d["catalogs"][0]["items"][1].update(category="x"), "items[1].category"),
        (
            lambda d: d["catalogs"][0]["items"].append(dict(d["catalogs"][0]["items"][0])),
            "appears twice",
        ),
        (lambda d: d["service"].update(idempotency_ttl_s=3600), "service.idempotency_ttl_s"),
        (lambda d: d["service"].update(timezone="Mars/Base"), "service.timezone"),
        (lambda d: d["service"].update(pay_hold_s="long"), "service.pay_hold_s: expected float"),
        (lambda d: d["service"].update(redis_appendfsync="no"), "service.redis_appendfsync"),
        (lambda d: d["service"].update(redis_replicas_ack=-1), "service.redis_replicas_ack"),
        (lambda d: d["service"].update(redis_replica_wait_ms=0), "service.redis_replica_wait_ms"),
        (lambda d: d["service"].update(refund_pending_alert_s=0), "refund_pending_alert_s"),
        (
            lambda d: d.update(channels={"WECHAT": {"no_answer": "pray"}}),
            "channels.WECHAT.no_answer",
        ),
        (
            lambda d: d.update(channels={"ALIPAY": {"reverse_give_up_after_s": 20}}),
            "must come after both confirm_window_s",
        ),
        (lambda d: d["providers"].update(UNIONPAY={"base_url": "ftp://x"}), "providers.UNIONPAY"),
        (lambda d: d["providers"].update(ALIPAY={"merchant_id": ""}), "ALIPAY.merchant_id"),
        (lambda d: d["service_points"][0].update(id="sp-1"), "service_points[0].id"),
        (lambda d: d["service_points"].append(dict(d["service_points"][0])), "appears twice"),
        (lambda d: d.pop("catalogs"), "catalogs"),
    ],
)
def test_bad_entries_are_named(change: Any, where: str) -> None:
    assert where in broken(change)


def test_an_unreadable_file_is_reported(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[service\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_the_record_settings_of_the_sample() -> None:
    record = load_config().record
    assert record.retention_s == 7 * 86_400
    assert record.case_retention_s == 400 * 86_400
    assert record.redis_maxmemory_mb == 2048


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("drain_batch", 0, "windowpay.toml.record.drain_batch: must be at least 1"),
        ("redis_maxmemory_mb", 16, "windowpay.toml.record.redis_maxmemory_mb: must be at least 64"),
        ("retention_s", -1, "windowpay.toml.record.retention_s: must be at least 0.0"),
        ("housekeeping_s", "often", "windowpay.toml.record.housekeeping_s: expected float"),
    ],
)
def test_a_bad_record_setting_is_named(key: str, value: Any, message: str) -> None:
    assert broken(lambda data: data["record"].update({key: value})).startswith(message)


def test_each_channel_is_told_the_listeners_url_unless_it_names_its_own() -> None:
    data = sample_data()
    data["notify"].update(port=9000, public_url="https://pay.example.gov.cn/cb/")
    data["providers"]["UNIONPAY"] = {"notify_url": "https://acq.example.gov.cn/back"}
    config = parse_config(data)
    assert config.notify_url(Channel.WECHAT) == "https://pay.example.gov.cn/cb/notify/wechat"
    assert config.notify_url(Channel.ALIPAY) == "https://pay.example.gov.cn/cb/notify/alipay"
    assert config.notify_url(Channel.UNIONPAY) == "https://acq.example.gov.cn/back"
    moved = parse_config(sample_data()).with_notify(port=40123)
    assert moved.notify_url(Channel.ALIPAY) == "http://127.0.0.1:40123/notify/alipay"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("port", 70000, "windowpay.toml.notify.port: must be a TCP port"),
        ("public_url", "pay.example.gov.cn", "windowpay.toml.notify.public_url: must be an http"),
        ("max_skew_s", 0, "windowpay.toml.notify.max_skew_s: must be at least 1.0"),
    ],
)
def test_a_bad_notify_setting_is_named(key: str, value: Any, message: str) -> None:
    assert broken(lambda data: data["notify"].update({key: value})).startswith(message)


def test_the_consoles_trusted_proxies_are_networks() -> None:
    assert load_config().console.trusted_proxies == ()
    data = sample_data()
    data["console"] = {"trusted_proxies": ["127.0.0.1", "10.8.0.0/16", "2001:db8::/32"]}
    proxies = parse_config(data).console.trusted_proxies
    assert [str(p) for p in proxies] == ["127.0.0.1/32", "10.8.0.0/16", "2001:db8::/32"]


@pytest.mark.parametrize("value", [["10.0.0.1/8"], ["proxy.local"], [8080], "127.0.0.1"])
def test_a_bad_trusted_proxy_is_named(value: Any) -> None:
    message = broken(lambda data: data.setdefault("console", {}).update(trusted_proxies=value))
    assert message.startswith("windowpay.toml.console.trusted_proxies: ")


# ---- provider settings: what each channel declares, and nothing else -------------------


def provider(channel: str, **settings: Any) -> Any:
    """A change that puts `settings` in the deployment's [providers.<channel>]."""
    return lambda data: data["providers"].setdefault(channel, {}).update(settings)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # A misspelt name used to be dropped without a word, the default left in place.
        (provider("WECHAT", merchant_idd="1230000109"), "providers.WECHAT.merchant_idd: unknown"),
        (provider("WECHAT", sub_mchid="1900000109"), "providers.WECHAT.sub_mchid: unknown"),
        (provider("UNIONPAY", signer="中国银联"), "providers.UNIONPAY.signer: unknown"),
        (provider("ALIPAY", app_cert_sn="x"), "providers.ALIPAY.app_cert_sn: unknown"),
        (provider("WEIXIN", merchant_id="1"), "providers.WEIXIN: unknown provider"),
        # the channel's own rules, not settings
        (provider("UNIONPAY", live_requires=[]), "providers.UNIONPAY.live_requires: unknown"),
        # each option has the type of its default
        (provider("WECHAT", partner="yes"), "providers.WECHAT.partner: expected bool"),
        (provider("WECHAT", payer_client_ip=1), "providers.WECHAT.payer_client_ip: expected str"),
    ],
)
def test_a_provider_setting_the_channel_does_not_declare_is_refused(
    change: Any, message: str
) -> None:
    assert broken(change).startswith(f"windowpay.toml.{message}")


def test_the_unknown_setting_message_lists_what_the_channel_reads() -> None:
    message = broken(provider("UNIONPAY", acquirer="48020000"))
    assert "acquirer_id" in message and "pfx_password_env" in message and "base_url" in message


def test_every_declared_name_and_the_other_form_of_a_secret_are_taken() -> None:
    data = sample_data()
    data["providers"]["UNIONPAY"] = {
        "pfx_password_env": "ACP_PFX",
        "acquirer_id": "48020000",
        "merchant_category_id": "9399",
        "merchant_name": "车管所",
        "merchant_abbr_name": "车管所",
        "certificate_refresh_s": 3600,
    }
    settings = parse_config(data).providers[Channel.UNIONPAY]
    assert (settings.credentials["pfx_password_env"], settings.credentials["acquirer_id"]) == (
        "ACP_PFX",
        "48020000",
    )


def test_a_channels_options_reach_it_with_their_types() -> None:
    data = sample_data()
    data["providers"]["WECHAT"] = {
        "merchant_id": "1230000100",
        "partner": True,
        "sub_merchant_id": "1900000109",
        "payer_client_ip": "203.0.113.7",
    }
    settings = parse_config(data).providers[Channel.WECHAT]
    assert settings.options.flag("partner") is True
    assert settings.options.text("payer_client_ip") == "203.0.113.7"
    assert settings.credentials["sub_merchant_id"] == "1900000109"
    plain = parse_config(sample_data()).providers[Channel.WECHAT]
    assert (plain.options.flag("partner"), plain.options.text("payer_client_ip")) == (False, "")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"partner": True}, "sub_merchant_id: is required when partner = true"),
        ({"sub_merchant_id": "1900000109"}, "sub_merchant_id: is set, but partner = false"),
    ],
)
def test_a_switch_brings_the_settings_it_needs(settings: dict[str, Any], message: str) -> None:
    assert broken(provider("WECHAT", **settings)).startswith(
        f"windowpay.toml.providers.WECHAT.{message}"
    )


def test_alipays_seller_id_is_a_declared_setting_and_must_be_a_pid() -> None:
    data = sample_data()
    data["providers"]["ALIPAY"] = {"seller_id": "2088531891668739"}
    assert seller_id(parse_config(data).providers[Channel.ALIPAY]) == "2088531891668739"
    assert seller_id(parse_config(sample_data()).providers[Channel.ALIPAY]) == ""
    data["providers"]["ALIPAY"] = {"seller_id": "2021000000000001"}  # an app_id, not a PID
    with pytest.raises(ConfigError, match=r"providers\.ALIPAY\.seller_id: .* not a PID"):
        seller_id(parse_config(data).providers[Channel.ALIPAY])
    assert broken(provider("ALIPAY", seller_pid="2088531891668739")).startswith(
        "windowpay.toml.providers.ALIPAY.seller_pid: unknown"
    )
