"""Where Alipay's key pairs live under keys_dir (public-key mode: no certificates), and
the dev material made for its sandbox (docs/PROVIDERS.md says where a live one comes from):

    alipay/merchant_private.pem        application private key
    alipay/platform_public.pem         Alipay public key
    alipay/merchant_public.pem, platform_private.pem   the sandbox gateway's side
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.providers.keys import Files, ProviderKeys, make_group, provider_keys
from orchestrator.providers.signing import generate_key, private_pem, public_pem


def alipay_keys(keys_dir: Path) -> ProviderKeys:
    return provider_keys(keys_dir, "alipay")


def make_dev_keys(keys_dir: Path) -> None:
    keys = alipay_keys(keys_dir)
    for private, public in (
        (keys.merchant_private, keys.merchant_public),
        (keys.platform_private, keys.platform_public),
    ):

        def pair(private: Path = private, public: Path = public) -> Files:
            key = generate_key()
            return {
                private: (private_pem(key), True),
                public: (public_pem(key.public_key()), False),
            }

        make_group([private, public], pair)
