"""RSA keys and the signature schemes the providers use.

All three gateways sign with RSA PKCS#1 v1.5 over SHA-256 (WeChat "WECHATPAY2-SHA256-
RSA2048", Alipay "RSA2", UnionPay signMethod 01 over a SHA-256 digest); what differs
is the message each one signs, which its adapter builds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

PrivateKey = rsa.RSAPrivateKey
PublicKey = rsa.RSAPublicKey


def generate_key() -> PrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(path: Path) -> PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path}: not an RSA private key")
    return key


def load_public_key(path: Path) -> PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"{path}: not an RSA public key")
    return key


def serial_of(key: PublicKey) -> str:
    """A stable certificate-serial-like id for a key (dev keys have no certificate)."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


def sign(key: PrivateKey, message: bytes) -> str:
    """base64(RSA PKCS#1 v1.5 over SHA-256)."""
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def verify(key: PublicKey, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def sorted_pairs(params: Mapping[str, str], *, exclude: frozenset[str]) -> str:
    """'a=1&b=2': non-empty parameters sorted by name, unencoded (Alipay, UnionPay,
    WeChat v2 all sign this form)."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in exclude and params[k])


@dataclass(frozen=True)
class KeyPair:
    """One side's keys as a peer sees them: our private key, their public key."""

    private: PrivateKey
    peer_public: PublicKey
    own_serial: str
    peer_serial: str


def key_pair(own_private: Path, peer_public: Path) -> KeyPair:
    private = load_private_key(own_private)
    public = load_public_key(peer_public)
    return KeyPair(private, public, serial_of(private.public_key()), serial_of(public))
