"""Where each side's keys and certificates live, and the dev material made on first start.

Layout under keys_dir (docs/PROVIDERS.md says what each file is and where a live one
comes from):

    receipts/check_code.key            the receipt check-code secret
    wechat/apiclient_key.pem           merchant API private key
    wechat/apiclient_cert.pem          merchant API certificate (its serial is serial_no)
    wechat/apiv3_key                   APIv3 key (unless the config names an env var)
    wechat/pub_key.pem                 "WeChat Pay public key" (public-key mode only)
    alipay/merchant_private.pem        application private key
    alipay/platform_public.pem         Alipay public key
    unionpay/acp_sign.pfx              signing key and certificate (PKCS#12)
    unionpay/pfx_password              its password (unless the config names an env var)
    unionpay/acp_root.cer, acp_middle.cer   the root and intermediate answers chain to
    sandbox/...                        the sandbox gateways' side; never in a live deployment

Dev material is made only for channels served by the sandbox, and only where no file
exists: a file is never written over. Private keys and secrets are created with mode
0600 from their first byte.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.domain.states import Channel
from orchestrator.files import create_file
from orchestrator.providers.certificates import (
    Certificate,
    SigningIdentity,
    certificate_pem,
    issue,
    load_pem_certificate,
    pfx_bytes,
)
from orchestrator.providers.signing import (
    KeyPair,
    generate_key,
    key_pair,
    load_private_key,
    private_pem,
    public_pem,
)

SANDBOXED = (Channel.WECHAT, Channel.ALIPAY, Channel.UNIONPAY)
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


class KeyMaterialError(RuntimeError):
    """Key material that is missing, half there, or cannot be read."""


@dataclass(frozen=True)
class Layout:
    """File names under keys_dir."""

    root: Path

    # the merchant's side (what a live deployment puts here)
    @property
    def wechat_key(self) -> Path:
        return self.root / "wechat" / "apiclient_key.pem"

    @property
    def wechat_cert(self) -> Path:
        return self.root / "wechat" / "apiclient_cert.pem"

    @property
    def wechat_apiv3_key(self) -> Path:
        return self.root / "wechat" / "apiv3_key"

    @property
    def wechat_pub_key(self) -> Path:
        return self.root / "wechat" / "pub_key.pem"

    @property
    def unionpay_pfx(self) -> Path:
        return self.root / "unionpay" / "acp_sign.pfx"

    @property
    def unionpay_pfx_password(self) -> Path:
        return self.root / "unionpay" / "pfx_password"

    @property
    def unionpay_root(self) -> Path:
        return self.root / "unionpay" / "acp_root.cer"

    @property
    def unionpay_middle(self) -> Path:
        return self.root / "unionpay" / "acp_middle.cer"

    # the sandbox gateways' side
    @property
    def sandbox(self) -> Path:
        return self.root / "sandbox"


@dataclass(frozen=True)
class ProviderKeys:
    """Alipay's key pairs (public-key mode: no certificates)."""

    folder: Path

    @property
    def merchant_private(self) -> Path:
        return self.folder / "merchant_private.pem"

    @property
    def merchant_public(self) -> Path:
        return self.folder / "merchant_public.pem"

    @property
    def platform_private(self) -> Path:
        return self.folder / "platform_private.pem"

    @property
    def platform_public(self) -> Path:
        return self.folder / "platform_public.pem"

    def for_merchant(self) -> KeyPair:
        """windowpay's side: sign with the merchant key, verify the platform's."""
        return key_pair(self.merchant_private, self.platform_public)

    def for_platform(self) -> KeyPair:
        """The gateway's (sandbox's) side."""
        return key_pair(self.platform_private, self.merchant_public)


def provider_keys(keys_dir: Path, provider: str) -> ProviderKeys:
    return ProviderKeys(keys_dir / provider)


# ---- writing, never over a file -------------------------------------------------------


def write_new(path: Path, data: bytes, *, private: bool) -> None:
    """Create `path` with `data`; fail if it exists. A private file is 0600 from the
    first byte."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    create_file(path, data, mode=PRIVATE_MODE if private else PUBLIC_MODE)


Files = dict[Path, tuple[bytes, bool]]  # path -> (content, private)


def _make_group(paths: Iterable[Path], make: Callable[[], Files]) -> bool:
    """Write a group of files that belong together (a key and its certificate...) when
    none exists; leave it when all exist; refuse when only some do."""
    paths = list(paths)
    present = [p for p in paths if p.exists()]
    if len(present) == len(paths):
        return False
    if present:
        missing = [str(p) for p in paths if not p.exists()]
        raise KeyMaterialError(
            f"{', '.join(str(p) for p in present)} exist(s) but {', '.join(missing)} "
            "do(es) not: refusing to generate over existing key material; restore the "
            "missing files or remove the whole group"
        )
    files = make()
    assert set(files) == set(paths)
    for path, (content, private) in files.items():
        write_new(path, content, private=private)
    return True


# ---- reading ---------------------------------------------------------------------------


def read_identity(key: Path, cert: Path) -> SigningIdentity:
    try:
        return SigningIdentity(load_private_key(key), load_pem_certificate(cert.read_bytes()))
    except OSError as error:
        raise KeyMaterialError(f"cannot read {error.filename}: {error.strerror}") from None


def read_certificate(path: Path) -> Certificate:
    try:
        return load_pem_certificate(path.read_bytes())
    except OSError as error:
        raise KeyMaterialError(f"cannot read {path}: {error.strerror}") from None


def read_secret(keys_dir: Path, file: str, env: str) -> bytes:
    """A secret from the environment variable `env` when one is named, else from `file`
    (relative to keys_dir unless absolute); surrounding whitespace is dropped."""
    if env:
        value = os.environ.get(env)
        if value is None:
            raise KeyMaterialError(f"environment variable {env} is not set")
        return value.strip().encode()
    path = keys_dir / file
    try:
        return path.read_bytes().strip()
    except OSError as error:
        raise KeyMaterialError(f"cannot read secret {path}: {error.strerror}") from None


# ---- the receipt secret ------------------------------------------------------------------


def receipt_secret_path(keys_dir: Path) -> Path:
    return keys_dir / "receipts" / "check_code.key"


def receipt_secret(keys_dir: Path) -> bytes:
    return bytes.fromhex(receipt_secret_path(keys_dir).read_text().strip())


def ensure_receipt_secret(keys_dir: Path) -> None:
    """The secret that receipt check codes are derived with, made once per deployment."""
    secret = receipt_secret_path(keys_dir)
    _make_group([secret], lambda: {secret: (os.urandom(32).hex().encode(), True)})


# ---- dev material ------------------------------------------------------------------------


def ensure_dev_keys(keys_dir: Path, channels: Iterable[Channel] = SANDBOXED) -> None:
    """Make the missing dev material of the sandboxed `channels`, never over a file."""
    wanted = set(channels)
    layout = Layout(keys_dir)
    if wanted & {Channel.WECHAT, Channel.UNIONPAY}:
        _sandbox_ca(layout)
    if Channel.WECHAT in wanted:
        _wechat(layout)
    if Channel.ALIPAY in wanted:
        _alipay(layout)
    if Channel.UNIONPAY in wanted:
        _unionpay(layout)


@dataclass(frozen=True)
class SandboxCa:
    root: SigningIdentity
    middle: SigningIdentity

    def issue(self, name: str) -> SigningIdentity:
        key = generate_key()
        certificate = issue(name, key, (self.middle.certificate, self.middle.key), ca=False)
        return SigningIdentity(key, certificate)


def _ca_files(layout: Layout) -> dict[str, Path]:
    ca = layout.sandbox / "ca"
    return {
        "root_key": ca / "root_key.pem",
        "root_cert": ca / "root_cert.pem",
        "middle_key": ca / "middle_key.pem",
        "middle_cert": ca / "middle_cert.pem",
    }


def sandbox_ca(keys_dir: Path) -> SandboxCa:
    files = _ca_files(Layout(keys_dir))
    return SandboxCa(
        read_identity(files["root_key"], files["root_cert"]),
        read_identity(files["middle_key"], files["middle_cert"]),
    )


def _sandbox_ca(layout: Layout) -> None:
    files = _ca_files(layout)

    def make() -> Files:
        root_key, middle_key = generate_key(), generate_key()
        root = issue("windowpay sandbox root CA", root_key, None, ca=True)
        middle = issue("windowpay sandbox intermediate CA", middle_key, (root, root_key), ca=True)
        return {
            files["root_key"]: (private_pem(root_key), True),
            files["root_cert"]: (certificate_pem(root), False),
            files["middle_key"]: (private_pem(middle_key), True),
            files["middle_cert"]: (certificate_pem(middle), False),
        }

    _make_group(files.values(), make)


def _identity_files(identity: SigningIdentity, key: Path, cert: Path) -> Files:
    return {
        key: (private_pem(identity.key), True),
        cert: (certificate_pem(identity.certificate), False),
    }


def wechat_platform_files(layout: Layout) -> tuple[Path, Path]:
    folder = layout.sandbox / "wechat"
    return folder / "platform_key.pem", folder / "platform_cert.pem"


def wechat_pub_key_private(layout: Layout) -> Path:
    return layout.sandbox / "wechat" / "pub_key_private.pem"


def _wechat(layout: Layout) -> None:
    ca = sandbox_ca(layout.root)
    _make_group(
        [layout.wechat_key, layout.wechat_cert],
        lambda: _identity_files(
            ca.issue("1900000109 merchant API certificate"), layout.wechat_key, layout.wechat_cert
        ),
    )
    key, cert = wechat_platform_files(layout)
    _make_group(
        [key, cert],
        lambda: _identity_files(ca.issue("WeChat Pay sandbox platform certificate"), key, cert),
    )
    _make_group(
        [layout.wechat_apiv3_key],
        lambda: {layout.wechat_apiv3_key: (secrets.token_hex(16).encode(), True)},
    )
    pub_private = wechat_pub_key_private(layout)

    def pub_key() -> Files:
        private = generate_key()
        return {
            pub_private: (private_pem(private), True),
            layout.wechat_pub_key: (public_pem(private.public_key()), False),
        }

    _make_group([pub_private, layout.wechat_pub_key], pub_key)


def _alipay(layout: Layout) -> None:
    keys = provider_keys(layout.root, "alipay")
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

        _make_group([private, public], pair)


def unionpay_platform_files(layout: Layout) -> tuple[Path, Path]:
    folder = layout.sandbox / "unionpay"
    return folder / "platform_key.pem", folder / "platform_cert.pem"


def unionpay_registered_merchant(layout: Layout) -> Path:
    """The merchant's signing certificate as the gateway has it on file."""
    return layout.sandbox / "unionpay" / "merchant_cert.pem"


def _unionpay(layout: Layout) -> None:
    ca = sandbox_ca(layout.root)
    registered = unionpay_registered_merchant(layout)

    def merchant() -> Files:
        identity = ca.issue("898000000000001 ACP signing certificate")
        password = secrets.token_urlsafe(18).encode()
        return {
            layout.unionpay_pfx: (pfx_bytes(identity, password, "acp_sign"), True),
            layout.unionpay_pfx_password: (password, True),
            registered: (certificate_pem(identity.certificate), False),
        }

    _make_group([layout.unionpay_pfx, layout.unionpay_pfx_password, registered], merchant)
    _make_group(
        [layout.unionpay_root, layout.unionpay_middle],
        lambda: {
            layout.unionpay_root: (certificate_pem(ca.root.certificate), False),
            layout.unionpay_middle: (certificate_pem(ca.middle.certificate), False),
        },
    )
    key, cert = unionpay_platform_files(layout)
    _make_group(
        [key, cert],
        lambda: _identity_files(ca.issue("China UnionPay sandbox signing certificate"), key, cert),
    )
