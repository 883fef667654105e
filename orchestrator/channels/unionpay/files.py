"""Where UnionPay's keys and certificates live under keys_dir, and the dev material made
for its sandbox (docs/PROVIDERS.md says where a live one comes from):

    unionpay/acp_sign.pfx              signing key and certificate (PKCS#12)
    unionpay/pfx_password              its password (unless the config names an env var)
    unionpay/acp_root.cer, acp_middle.cer   the root and intermediate answers chain to
    sandbox/unionpay/...               the sandbox gateway's side
"""

from __future__ import annotations

import secrets
from pathlib import Path

from orchestrator.channels.unionpay.keys import SANDBOX_SIGNER
from orchestrator.providers.certificates import certificate_pem, pfx_bytes
from orchestrator.providers.keys import (
    Files,
    ensure_sandbox_ca,
    identity_files,
    make_group,
    sandbox_ca,
)

# The gateway's signing certificate names its holder as UnionPay's do (wire.holder_name).
SANDBOX_SIGNER_CN = f"041@Zsandbox@{SANDBOX_SIGNER}@00000001"


def pfx(keys_dir: Path) -> Path:
    return keys_dir / "unionpay" / "acp_sign.pfx"


def pfx_password(keys_dir: Path) -> Path:
    return keys_dir / "unionpay" / "pfx_password"


def root_cert(keys_dir: Path) -> Path:
    return keys_dir / "unionpay" / "acp_root.cer"


def middle_cert(keys_dir: Path) -> Path:
    return keys_dir / "unionpay" / "acp_middle.cer"


def platform_files(keys_dir: Path) -> tuple[Path, Path]:
    folder = keys_dir / "sandbox" / "unionpay"
    return folder / "platform_key.pem", folder / "platform_cert.pem"


def registered_merchant(keys_dir: Path) -> Path:
    """The merchant's signing certificate as the gateway has it on file."""
    return keys_dir / "sandbox" / "unionpay" / "merchant_cert.pem"


def make_dev_keys(keys_dir: Path) -> None:
    ensure_sandbox_ca(keys_dir)
    ca = sandbox_ca(keys_dir)
    signing, password_file = pfx(keys_dir), pfx_password(keys_dir)
    registered = registered_merchant(keys_dir)

    def merchant() -> Files:
        identity = ca.issue("898000000000001 ACP signing certificate")
        password = secrets.token_urlsafe(18).encode()
        return {
            signing: (pfx_bytes(identity, password, "acp_sign"), True),
            password_file: (password, True),
            registered: (certificate_pem(identity.certificate), False),
        }

    make_group([signing, password_file, registered], merchant)
    root, middle = root_cert(keys_dir), middle_cert(keys_dir)
    make_group(
        [root, middle],
        lambda: {
            root: (certificate_pem(ca.root.certificate), False),
            middle: (certificate_pem(ca.middle.certificate), False),
        },
    )
    key, cert = platform_files(keys_dir)
    make_group(
        [key, cert],
        lambda: identity_files(ca.issue(SANDBOX_SIGNER_CN), key, cert),
    )
