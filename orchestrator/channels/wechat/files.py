"""Where WeChat Pay's keys and certificates live under keys_dir, and the dev material made
for its sandbox (docs/PROVIDERS.md says where a live one comes from):

    wechat/apiclient_key.pem           merchant API private key
    wechat/apiclient_cert.pem          merchant API certificate (its serial is serial_no)
    wechat/apiv3_key                   APIv3 key (unless the config names an env var)
    wechat/pub_key.pem                 "WeChat Pay public key" (public-key mode only)
    sandbox/wechat/...                 the sandbox gateway's side
"""

from __future__ import annotations

import secrets
from pathlib import Path

from orchestrator.providers.keys import (
    Files,
    ensure_sandbox_ca,
    identity_files,
    make_group,
    sandbox_ca,
)
from orchestrator.providers.signing import generate_key, private_pem, public_pem


def merchant_key(keys_dir: Path) -> Path:
    return keys_dir / "wechat" / "apiclient_key.pem"


def merchant_cert(keys_dir: Path) -> Path:
    return keys_dir / "wechat" / "apiclient_cert.pem"


def apiv3_key(keys_dir: Path) -> Path:
    return keys_dir / "wechat" / "apiv3_key"


def pub_key(keys_dir: Path) -> Path:
    return keys_dir / "wechat" / "pub_key.pem"


def platform_files(keys_dir: Path) -> tuple[Path, Path]:
    folder = keys_dir / "sandbox" / "wechat"
    return folder / "platform_key.pem", folder / "platform_cert.pem"


def pub_key_private(keys_dir: Path) -> Path:
    return keys_dir / "sandbox" / "wechat" / "pub_key_private.pem"


def make_dev_keys(keys_dir: Path) -> None:
    ensure_sandbox_ca(keys_dir)
    ca = sandbox_ca(keys_dir)
    key, cert = merchant_key(keys_dir), merchant_cert(keys_dir)
    make_group(
        [key, cert],
        lambda: identity_files(ca.issue("1900000109 merchant API certificate"), key, cert),
    )
    platform_key, platform_cert = platform_files(keys_dir)
    make_group(
        [platform_key, platform_cert],
        lambda: identity_files(
            ca.issue("WeChat Pay sandbox platform certificate"), platform_key, platform_cert
        ),
    )
    apiv3 = apiv3_key(keys_dir)
    make_group([apiv3], lambda: {apiv3: (secrets.token_hex(16).encode(), True)})
    pub_private, pub_public = pub_key_private(keys_dir), pub_key(keys_dir)

    def pub_key_pair() -> Files:
        private = generate_key()
        return {
            pub_private: (private_pem(private), True),
            pub_public: (public_pem(private.public_key()), False),
        }

    make_group([pub_private, pub_public], pub_key_pair)
