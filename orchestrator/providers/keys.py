"""Where each side's keys and certificates live, and the dev material made on first start.

Layout under keys_dir: each channel package's files.py lists its own files; here only
what every channel shares (docs/PROVIDERS.md says what each file is and where a live one
comes from):

    receipts/check_code.key            the receipt check-code secret
    sandbox/ca/...                     the sandbox CA that issues the dev certificates
    sandbox/...                        the sandbox gateways' side; never in a live deployment

Dev material is made only for channels served by the sandbox, and only where no file
exists: a file is never written over. Private keys and secrets are created with mode
0600 from their first byte.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.files import create_file
from orchestrator.providers.certificates import (
    Certificate,
    SigningIdentity,
    certificate_pem,
    issue,
    load_pem_certificate,
)
from orchestrator.providers.signing import (
    KeyPair,
    generate_key,
    key_pair,
    load_private_key,
    private_pem,
)

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


class KeyMaterialError(RuntimeError):
    """Key material that is missing, half there, or cannot be read."""


@dataclass(frozen=True)
class ProviderKeys:
    """A channel's key pairs in public-key mode (no certificates): both sides' halves."""

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


def make_group(paths: Iterable[Path], make: Callable[[], Files]) -> bool:
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
    make_group([secret], lambda: {secret: (os.urandom(32).hex().encode(), True)})


# ---- dev material ------------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxCa:
    root: SigningIdentity
    middle: SigningIdentity

    def issue(self, name: str) -> SigningIdentity:
        key = generate_key()
        certificate = issue(name, key, (self.middle.certificate, self.middle.key), ca=False)
        return SigningIdentity(key, certificate)


def _ca_files(keys_dir: Path) -> dict[str, Path]:
    ca = keys_dir / "sandbox" / "ca"
    return {
        "root_key": ca / "root_key.pem",
        "root_cert": ca / "root_cert.pem",
        "middle_key": ca / "middle_key.pem",
        "middle_cert": ca / "middle_cert.pem",
    }


def sandbox_ca(keys_dir: Path) -> SandboxCa:
    files = _ca_files(keys_dir)
    return SandboxCa(
        read_identity(files["root_key"], files["root_cert"]),
        read_identity(files["middle_key"], files["middle_cert"]),
    )


def ensure_sandbox_ca(keys_dir: Path) -> None:
    """The CA that issues every sandbox certificate, made once."""
    files = _ca_files(keys_dir)

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

    make_group(files.values(), make)


def identity_files(identity: SigningIdentity, key: Path, cert: Path) -> Files:
    return {
        key: (private_pem(identity.key), True),
        cert: (certificate_pem(identity.certificate), False),
    }
