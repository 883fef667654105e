"""Where Alipay's key pairs and certificates live under keys_dir, and the dev material
made for its sandbox (docs/PROVIDERS.md says where a live one comes from):

    alipay/merchant_private.pem        application private key
    alipay/platform_public.pem         Alipay public key (public-key mode)
    alipay/merchant_public.pem, platform_private.pem   the sandbox gateway's side

Certificate mode reads the three certificate files [providers.ALIPAY] names instead of
the Alipay public key. `make_dev_certificates` makes a dev set of them, for trying that
mode against the sandbox (it is not made on start):

    alipay/app_cert.crt                the app's certificate (appCertPublicKey_<app_id>.crt)
    alipay/alipay_cert.crt             Alipay's, with its issuer (alipayCertPublicKey_RSA2.crt)
    alipay/alipay_root_cert.crt        the root (alipayRootCert.crt)
    sandbox/alipay/...                 the dev CA's keys
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.providers.certificates import certificate_pem, issue
from orchestrator.providers.keys import Files, ProviderKeys, make_group, provider_keys
from orchestrator.providers.signing import (
    generate_key,
    load_private_key,
    private_pem,
    public_pem,
)

DEV_CERTIFICATES = {
    "app_cert_file": "alipay/app_cert.crt",
    "alipay_cert_file": "alipay/alipay_cert.crt",
    "alipay_root_cert_file": "alipay/alipay_root_cert.crt",
}


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


def make_dev_certificates(keys_dir: Path) -> dict[str, str]:
    """Certificates for the dev key pairs under a dev root and intermediate, never over a
    file; the [providers.ALIPAY] entries that choose certificate mode with them."""
    make_dev_keys(keys_dir)
    keys = alipay_keys(keys_dir)
    ca = keys_dir / "sandbox" / "alipay"
    made = {name: keys_dir / path for name, path in DEV_CERTIFICATES.items()}
    paths = [ca / "root_key.pem", ca / "middle_key.pem", *made.values()]

    def chain() -> Files:
        root_key, middle_key = generate_key(), generate_key()
        root = issue("windowpay sandbox Alipay root", root_key, None, ca=True)
        middle = issue("windowpay sandbox Alipay Class 2", middle_key, (root, root_key), ca=True)
        signer = (middle, middle_key)
        app = issue("2021000000000001", load_private_key(keys.merchant_private), signer, ca=False)
        alipay = issue("支付宝 sandbox", load_private_key(keys.platform_private), signer, ca=False)
        return {
            paths[0]: (private_pem(root_key), True),
            paths[1]: (private_pem(middle_key), True),
            made["app_cert_file"]: (certificate_pem(app), False),
            made["alipay_cert_file"]: (certificate_pem(alipay) + certificate_pem(middle), False),
            made["alipay_root_cert_file"]: (certificate_pem(root), False),
        }

    make_group(paths, chain)
    return dict(DEV_CERTIFICATES)
