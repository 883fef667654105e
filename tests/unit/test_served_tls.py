"""The TLS of the console and the notification listener: its settings in [console] and
[notify], which certificate each serves, the server context, and the sandboxes that post
to an https listener (docs/SECURITY.md, "What the scanners say")."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from orchestrator.access import pki
from orchestrator.access.https import served_url, server_context, web_tls
from orchestrator.bootstrap import open_listener
from orchestrator.channels.sandboxes import start_sandboxes
from orchestrator.config import Config, ConfigError, ServedTls, parse_config
from orchestrator.domain.states import Channel
from tests.support import code, eventually, small_config, small_config_data


def parsed(table: str, **settings: Any) -> Config:
    data = small_config_data()
    data.setdefault(table, {}).update(settings)
    return parse_config(data, "windowpay.toml")


def refused(table: str, **settings: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parsed(table, **settings)
    return str(info.value)


@pytest.mark.parametrize("table", ["console", "notify"])
def test_the_tls_settings_are_read_and_checked_by_name(table: str) -> None:
    assert getattr(parsed(table), table).tls == ServedTls()
    given = parsed(table, tls_cert_file="/etc/w/web.crt", tls_key_file="/etc/w/web.key")
    assert getattr(given, table).tls == ServedTls("/etc/w/web.crt", "/etc/w/web.key")
    assert getattr(parsed(table, plain_http=True), table).tls.plain_http
    where = f"windowpay.toml.{table}"
    assert refused(table, tls_cert_file="/etc/w/web.crt").startswith(f"{where}.tls_key_file: ")
    assert refused(table, tls_key_file="/etc/w/web.key").startswith(f"{where}.tls_cert_file: ")
    both = refused(table, plain_http=True, tls_cert_file="a.crt", tls_key_file="a.key")
    assert both.startswith(f"{where}.plain_http: ") and "remove one" in both
    assert refused(table, plain_http="yes").startswith(f"{where}.plain_http: expected bool")
    typo = refused(table, tls_cert_fle="/etc/w/web.crt")  # never a silent fallback
    assert typo.startswith(f"{where}.tls_cert_fle: unknown setting")


def test_the_development_pki_issues_the_web_certificate_once(tmp_path: Path) -> None:
    assert pki.init(tmp_path, ["T01"]) == ["CA", "server", "web", "T01"]
    paths = pki.PkiPaths(tmp_path)
    web = x509.load_pem_x509_certificate(paths.web_cert.read_bytes())
    front_door = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    web.verify_directly_issued_by(ca)
    names = web.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    usage = web.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert web.public_key() != front_door.public_key()  # a key of its own
    assert paths.web_key.stat().st_mode & 0o777 == 0o600
    # a PKI made before the web certificate gets one, and nothing else changes
    paths.web_cert.unlink()
    paths.web_key.unlink()
    before = paths.server_cert.read_bytes()
    assert pki.init(tmp_path, ["T01"]) == ["web"]
    assert paths.server_cert.read_bytes() == before


def test_which_certificate_each_server_presents(tmp_path: Path) -> None:
    config = small_config()
    dev = web_tls(config, "console", tmp_path)
    root = (tmp_path / "pki").resolve()
    assert dev is not None
    assert (dev.cert, dev.key, dev.dev_ca) == (root / "web.crt", root / "web.key", root / "ca.crt")
    files = ServedTls("/etc/w/web.crt", "/etc/w/web.key")
    named = web_tls(replace(config, notify=replace(config.notify, tls=files)), "notify", tmp_path)
    assert named is not None
    assert (named.cert, named.key, named.dev_ca) == (
        Path(files.cert_file),
        Path(files.key_file),
        None,
    )
    plain = replace(config, console=replace(config.console, tls=ServedTls(plain_http=True)))
    assert web_tls(plain, "console", tmp_path) is None
    assert web_tls(plain, "notify", tmp_path) is not None  # each server its own setting


def test_certificates_made_elsewhere_leave_no_server_without_a_choice(tmp_path: Path) -> None:
    config = small_config()
    elsewhere = replace(config.access, ca_file="/etc/w/ca.crt", server_cert_file="/etc/w/s.crt",
                        server_key_file="/etc/w/s.key", revocation="none")  # fmt: skip
    with pytest.raises(pki.PkiError, match=r"^\[notify\]: .*tls_cert_file.*plain_http = true"):
        web_tls(replace(config, access=elsewhere), "notify", tmp_path)


def test_an_unusable_certificate_is_named_at_start(tmp_path: Path) -> None:
    tls = web_tls(small_config(), "console", tmp_path)  # no PKI made there
    assert tls is not None
    with pytest.raises(pki.PkiError, match=r"^\[console\] cannot serve TLS with .*web\.crt"):
        tls.context()


def test_the_server_context_is_tls_1_2_and_up_with_forward_secret_aead_suites(
    tmp_path: Path,
) -> None:
    pki.init(tmp_path, [])
    paths = pki.PkiPaths(tmp_path)
    context = server_context(paths.web_cert, paths.web_key)
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    suites = context.get_ciphers()
    assert suites and all(s["aead"] for s in suites), suites
    tls12 = [s for s in suites if s["protocol"] == "TLSv1.2"]
    assert tls12 and all(s["kea"] == "kx-ecdhe" for s in tls12), tls12
    assert context.options & ssl.OP_NO_COMPRESSION
    assert context.options & ssl.OP_NO_RENEGOTIATION


def test_a_servers_own_url() -> None:
    assert served_url(True, "0.0.0.0", 8470) == "https://127.0.0.1:8470"
    assert served_url(False, "127.0.0.1", 8471) == "http://127.0.0.1:8471"
    assert served_url(True, "::1", 8471) == "https://[::1]:8471"
    assert served_url(True, "::", 8471) == served_url(True, "", 8471) == "https://127.0.0.1:8471"
    assert served_url(True, "localhost", 8471) == "https://localhost:8471"


@pytest.fixture
async def https_listener(tmp_path: Path) -> AsyncIterator[tuple[Config, Path]]:
    """The listener over TLS with the development PKI's certificate, as `windowpay serve`
    opens it, on a free port; the config that knows its URL, and the CA."""
    config = small_config(prefix="E")
    pki.init(tmp_path / "pki", [])
    tls = web_tls(config, "notify", tmp_path)
    assert tls is not None and tls.dev_ca is not None
    async with AsyncExitStack() as stack:
        _, config = await open_listener(config, stack, tls)
        yield config, tls.dev_ca


async def notified(config: Config, keys_dir: Path, ca: Path | None) -> int:
    """The HTTP status the Alipay sandbox got for a paid trade's notification (0: none)."""
    sandboxes = await start_sandboxes(config, keys_dir, notify_ca=ca)
    try:
        gateway = sandboxes.gateways[Channel.ALIPAY]
        await gateway.bank.pay("E1K2M9XZ4TBA7Q2PP1ABC123", code(Channel.ALIPAY), 8000, "E1")
        sent = await eventually(lambda: asyncio.sleep(0, gateway.sent), bool)
        return sent[0][1]
    finally:
        await sandboxes.stop()


async def test_the_sandboxes_post_to_an_https_listener_trusting_the_development_ca(
    https_listener: tuple[Config, Path], tmp_path: Path
) -> None:
    config, ca = https_listener
    assert config.notify_url(Channel.ALIPAY).startswith("https://127.0.0.1:")
    # the listener answers (503: no verifiers attached to this one), so TLS held
    assert await notified(config, tmp_path / "keys", ca) == 503
    # without the CA the certificate is refused and nothing is delivered
    assert await notified(config, tmp_path / "keys", None) == 0
