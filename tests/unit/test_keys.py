"""Dev key material: made only for sandboxed channels, never over a file, private files
0600 from their first byte; secrets from a file or the environment, never the config."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from orchestrator.channels.registry import ensure_dev_keys
from orchestrator.channels.unionpay import files as unionpay_files
from orchestrator.channels.unionpay.wiring import unionpay_keys
from orchestrator.channels.wechat import files as wechat_files
from orchestrator.channels.wechat.wiring import wechat_merchant, wechat_trust
from orchestrator.config import ConfigError, parse_config
from orchestrator.domain.states import Channel
from orchestrator.providers import keys as keys_module
from orchestrator.providers.certificates import load_pfx, serial_decimal
from orchestrator.providers.keys import (
    KeyMaterialError,
    ensure_receipt_secret,
    read_secret,
    write_new,
)
from tests.support import sample_data


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` with its SHA-256 and mode."""
    return {
        str(path.relative_to(folder)): (
            hashlib.sha256(path.read_bytes()).hexdigest() + oct(path.stat().st_mode & 0o777)
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_a_private_file_is_0600_before_its_first_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes: list[int] = []
    real_write = os.write

    def watching_write(descriptor: int, data: bytes) -> int:
        modes.append(stat.S_IMODE(os.fstat(descriptor).st_mode))
        return real_write(descriptor, data)

    monkeypatch.setattr(keys_module.os, "write", watching_write)
    old_umask = os.umask(0)  # the loosest umask a process could have
    try:
        write_new(tmp_path / "secret", b"x" * 10, private=True)
        write_new(tmp_path / "public", b"y", private=False)
    finally:
        os.umask(old_umask)
    assert modes == [0o600, 0o644]
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600


def test_nothing_is_written_over_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    target.write_bytes(b"live key")
    with pytest.raises(FileExistsError):
        write_new(target, b"dev key", private=True)
    assert target.read_bytes() == b"live key"


def test_dev_material_is_complete_private_and_made_once(tmp_path: Path) -> None:
    ensure_dev_keys(tmp_path)
    ensure_receipt_secret(tmp_path)
    first = snapshot(tmp_path)
    private = {
        "wechat/apiclient_key.pem", "wechat/apiv3_key", "alipay/merchant_private.pem",
        "unionpay/acp_sign.pfx", "unionpay/pfx_password", "receipts/check_code.key",
        "sandbox/ca/root_key.pem", "sandbox/ca/middle_key.pem",
        "sandbox/wechat/platform_key.pem", "sandbox/wechat/pub_key_private.pem",
        "alipay/platform_private.pem", "sandbox/unionpay/platform_key.pem",
    }  # fmt: skip
    assert private < set(first)
    for name, digest_and_mode in first.items():
        assert digest_and_mode.endswith("0o600" if name in private else "0o644"), name
    ensure_dev_keys(tmp_path)
    ensure_receipt_secret(tmp_path)
    assert snapshot(tmp_path) == first
    # what the adapters read is consistent: the serials come from the certificates
    settings = parse_config(sample_data()).providers
    merchant = wechat_merchant(tmp_path)
    assert merchant.own_serial == f"{merchant_certificate_serial(tmp_path):X}"
    assert len(wechat_trust(tmp_path, settings[Channel.WECHAT].credentials).apiv3_key) == 32
    union = unionpay_keys(tmp_path, settings[Channel.UNIONPAY].credentials)
    password = unionpay_files.pfx_password(tmp_path).read_bytes()
    assert union.own_serial == serial_decimal(
        load_pfx(unionpay_files.pfx(tmp_path).read_bytes(), password).certificate
    )
    assert union.own_serial.isdigit()


def merchant_certificate_serial(keys_dir: Path) -> int:
    from orchestrator.providers.keys import read_certificate

    return read_certificate(wechat_files.merchant_cert(keys_dir)).serial_number


def test_only_sandboxed_channels_get_dev_material(tmp_path: Path) -> None:
    ensure_dev_keys(tmp_path, [Channel.ALIPAY])
    assert not (tmp_path / "wechat").exists()
    assert not (tmp_path / "unionpay").exists()
    assert not (tmp_path / "sandbox" / "ca").exists()
    assert (tmp_path / "alipay" / "merchant_private.pem").exists()


def test_a_half_present_group_is_refused_not_completed(tmp_path: Path) -> None:
    """The old bug: a live merchant key without its public half was regenerated."""
    merchant_key = wechat_files.merchant_key(tmp_path)
    merchant_key.parent.mkdir(parents=True)
    merchant_key.write_bytes(b"the live merchant key")
    before = snapshot(tmp_path / "wechat")
    with pytest.raises(KeyMaterialError, match="refusing to generate"):
        ensure_dev_keys(tmp_path, [Channel.WECHAT])
    assert snapshot(tmp_path / "wechat") == before
    alipay = tmp_path / "alipay"
    alipay.mkdir()
    (alipay / "merchant_private.pem").write_bytes(b"live app key")
    with pytest.raises(KeyMaterialError, match=r"merchant_public\.pem"):
        ensure_dev_keys(tmp_path, [Channel.ALIPAY])
    assert (alipay / "merchant_private.pem").read_bytes() == b"live app key"


def test_secrets_come_from_the_named_file_or_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "apiv3").write_text("k" * 32 + "\n")
    assert read_secret(tmp_path, "apiv3", "") == b"k" * 32
    monkeypatch.setenv("WP_TEST_APIV3", "e" * 32)
    assert read_secret(tmp_path, "apiv3", "WP_TEST_APIV3") == b"e" * 32
    with pytest.raises(KeyMaterialError, match="WP_TEST_MISSING is not set"):
        read_secret(tmp_path, "apiv3", "WP_TEST_MISSING")
    with pytest.raises(KeyMaterialError, match="cannot read secret"):
        read_secret(tmp_path, "absent", "")


def with_wechat(**changes: Any) -> dict[str, Any]:
    data = sample_data()
    data["providers"].setdefault("WECHAT", {}).update(changes)
    return data


@pytest.mark.parametrize("name", ["apiv3_key", "api_key", "pfx_password", "private_key"])
def test_a_secret_written_in_the_config_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=f"secrets never go in the config.*{name}_file"):
        parse_config(with_wechat(**{name: "0123456789abcdef0123456789abcdef"}), "w.toml")


def test_credential_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="apiv3_key_env: name either"):
        parse_config(with_wechat(apiv3_key_file="a", apiv3_key_env="B"))
    config = parse_config(
        with_wechat(apiv3_key_env="WECHAT_APIV3", public_key_id="PUB_KEY_ID_0114")
    )
    credentials = config.providers[Channel.WECHAT].credentials
    assert (credentials["apiv3_key_env"], credentials["public_key_id"]) == (
        "WECHAT_APIV3",
        "PUB_KEY_ID_0114",
    )
    # the package's default file stays beside the deployment's variable: the variable wins
    assert credentials["apiv3_key_file"] == "wechat/apiv3_key"


def test_a_public_key_id_of_the_wrong_form_is_refused_when_the_adapter_is_built(
    tmp_path: Path,
) -> None:
    ensure_dev_keys(tmp_path, [Channel.WECHAT])
    config = parse_config(with_wechat(public_key_id="0114232134912410000000000000"))
    credentials = config.providers[Channel.WECHAT].credentials
    with pytest.raises(KeyMaterialError, match="public_key_id: a WeChat Pay public key id"):
        wechat_trust(tmp_path, credentials)
