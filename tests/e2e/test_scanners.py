"""sslyze, a TLS scanner no one here wrote, against the served front door, console and
notification listener (docs/SECURITY.md, "What the scanners say"), and against a server
planted with a weak TLS configuration, to show that the checks find one.

sslyze lives in a venv of its own (`make sslyze`: .tools/sslyze, from
requirements-sslyze.lock), since it pins an older cryptography than windowpay's."""

from __future__ import annotations

import asyncio
import json
import ssl
import warnings
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from orchestrator.access.https import WebTls, web_tls
from orchestrator.bootstrap import open_listener
from orchestrator.config import ServedTls
from orchestrator.console.commands import RouterCommands
from orchestrator.console.server import start_console
from tests.e2e.conftest import Deployed

ROOT = Path(__file__).resolve().parents[2]
SSLYZE = ROOT / ".tools" / "sslyze" / "bin" / "sslyze"
VERSIONS = ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1", "tls_1_2", "tls_1_3")
SCANS = (
    "--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1", "--tlsv1_2", "--tlsv1_3",
    "--heartbleed", "--openssl_ccs", "--compression", "--reneg", "--robot",
)  # fmt: skip
# What a cipher suite must have: forward secrecy and an AEAD (TLS 1.3's are all so).
STRONG_KEY_EXCHANGE = ("TLS_ECDHE_", "TLS_AES_", "TLS_CHACHA20_")
STRONG_CIPHER = ("_GCM_", "_CHACHA20_POLY1305_")
WEAK = ("NULL", "EXPORT", "RC4", "DES", "MD5", "anon", "CBC")
OLD_VERSIONS = ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1")
CHECKS = ("heartbleed", "openssl_ccs_injection", "tls_compression", "session_renegotiation",
          "robot")  # fmt: skip
ALLOW_CLIENT_RENEGOTIATION = 0x100  # OpenSSL 3's SSL_OP_ALLOW_CLIENT_RENEGOTIATION


async def sslyze(target: str, out: Path, *options: str) -> dict[str, Any]:
    """One server's scan result (sslyze's JSON), run without blocking the served loop."""
    if not SSLYZE.exists():
        pytest.fail(f"{SSLYZE} is missing: `make sslyze` makes it (`make test` does)")
    process = await asyncio.create_subprocess_exec(
        str(SSLYZE), "--quiet", "--mozilla_config=disable", f"--json_out={out}", *options,
        target, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 600)
    assert process.returncode == 0, err.decode()[-2000:]
    [result] = json.loads(out.read_text())["server_scan_results"]
    return dict(result)


def accepted_suites(scan: dict[str, Any], version: str) -> list[str]:
    attempt = scan[f"{version}_cipher_suites"]
    assert attempt["status"] == "COMPLETED", attempt.get("error_trace")
    return [s["cipher_suite"]["name"] for s in attempt["result"]["accepted_cipher_suites"]]


def suites_offered(scan: dict[str, Any]) -> dict[str, list[str]]:
    results = scan["scan_result"]
    return {version: accepted_suites(results, version) for version in VERSIONS}


def findings(scan: dict[str, Any]) -> list[str]:
    """What is wrong with a server's TLS, by sslyze's scan with SCANS ([]: nothing)."""
    if scan["connectivity_status"] != "COMPLETED":
        return [f"not scanned: {scan['connectivity_error_trace']}"]
    offered = suites_offered(scan)
    found = [f"{version} offered" for version in OLD_VERSIONS if offered[version]]
    found += [
        f"{version} not offered" for version in ("tls_1_2", "tls_1_3") if not offered[version]
    ]
    found += [f"weak suite {s}" for suites in offered.values() for s in suites if weak(s)]
    checks = {name: scan["scan_result"][name] for name in CHECKS}
    failed = [f"{name}: {c['status']}" for name, c in checks.items() if c["status"] != "COMPLETED"]
    if failed:
        return found + failed
    result = {name: check["result"] for name, check in checks.items()}
    if result["heartbleed"]["is_vulnerable_to_heartbleed"]:
        found.append("Heartbleed")
    if result["openssl_ccs_injection"]["is_vulnerable_to_ccs_injection"]:
        found.append("CCS injection")
    if result["tls_compression"]["supports_compression"]:
        found.append("compression")
    if result["session_renegotiation"]["is_vulnerable_to_client_renegotiation_dos"]:
        found.append("client-initiated renegotiation")
    if result["robot"]["robot_result"] not in (
        "NOT_VULNERABLE_NO_ORACLE", "NOT_VULNERABLE_RSA_NOT_SUPPORTED",
    ):  # fmt: skip
        found.append(f"ROBOT: {result['robot']['robot_result']}")
    return found


def weak(suite: str) -> bool:
    return (
        not suite.startswith(STRONG_KEY_EXCHANGE)
        or not any(part in suite for part in STRONG_CIPHER)
        or any(part in suite for part in WEAK)
        or suite.endswith("_SHA")  # a SHA-1 MAC
    )


def test_the_weak_suite_check_finds_weak_suites() -> None:
    for suite in (
        "TLS_RSA_WITH_AES_128_GCM_SHA256",  # no forward secrecy
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",  # CBC, SHA-1
        "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
        "TLS_ECDHE_ECDSA_WITH_NULL_SHA",
        "TLS_DH_anon_WITH_AES_256_GCM_SHA384",
    ):
        assert weak(suite), suite
    for suite in ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                  "TLS_CHACHA20_POLY1305_SHA256"):  # fmt: skip
        assert not weak(suite), suite


async def test_the_front_door_speaks_tls_1_2_and_up_strong_suites_client_certificate_only(
    deployed: Deployed, tmp_path: Path
) -> None:
    clients = deployed.pki_dir / "clients"
    scan = await sslyze(
        deployed.server.address, tmp_path / "front-door.json", *SCANS,
        "--cert", str(clients / "backoffice.crt"), "--key", str(clients / "backoffice.key"),
    )  # fmt: skip
    assert findings(scan) == []
    # without a client certificate there is no TLS session to scan at all
    bare = await sslyze(deployed.server.address, tmp_path / "no-client.json", "--tlsv1_2")
    assert bare["connectivity_status"] == "ERROR"
    assert "peer closed the connection" in bare["connectivity_error_trace"]


async def served_console(
    deployed: Deployed, stack: AsyncExitStack, staff_file: Path, tls: WebTls | None
) -> str:
    """The deployment's console on a free port, as `windowpay serve` starts it."""
    config = deployed.config.with_settings(console_port=0)
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        deployed.database_url, min_size=1, max_size=2, open=False
    )
    await pool.open()
    stack.push_async_callback(pool.close)
    return await start_console(
        config, pool, RouterCommands(deployed.server.door.router), staff_file, stack,
        tls=tls.context() if tls else None,
    )  # fmt: skip


async def served_listener(deployed: Deployed, stack: AsyncExitStack, tls: WebTls | None) -> str:
    """A notification listener on a free port, as `windowpay serve` opens it; its URL."""
    config = deployed.config.with_notify(port=0, public_url="")
    _, config = await open_listener(config, stack, tls)
    return config.notify.base_url


@pytest.fixture
async def served(deployed: Deployed, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """The console and the listener of the development deployment (no TLS settings: the
    development PKI's certificate), by their URLs."""
    config, data_dir = deployed.config, deployed.data_dir
    async with AsyncExitStack() as stack:
        yield {
            "console": await served_console(
                deployed,
                stack,
                tmp_path / "pki" / "staff.json",
                web_tls(config, "console", data_dir),
            ),
            "listener": await served_listener(deployed, stack, web_tls(config, "notify", data_dir)),
        }


async def test_the_console_and_the_listener_answer_https_trusted_by_the_development_ca(
    deployed: Deployed, served: dict[str, str]
) -> None:
    trust = ssl.create_default_context(cafile=deployed.pki_dir / "ca.crt")  # names checked
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.get(f"{served['console']}/payer/receipt", ssl=trust) as answer:
            assert answer.status == 200
        async with session.post(f"{served['listener']}/notify/wechat", ssl=trust) as answer:
            assert answer.status == 503  # listening; no verifiers attached to this one
        for url in served.values():  # the system's roots do not know the development CA
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(url)
            with pytest.raises(aiohttp.ClientError):  # and no plain HTTP on the same port
                await session.get(url.replace("https://", "http://"))


async def test_the_console_and_the_listener_speak_tls_1_2_and_up_with_strong_suites(
    served: dict[str, str], tmp_path: Path
) -> None:
    for name, url in served.items():
        assert url.startswith("https://"), url
        scan = await sslyze(url.removeprefix("https://"), tmp_path / f"{name}.json", *SCANS)
        assert findings(scan) == [], name
        assert scan["connectivity_result"]["client_auth_requirement"] == "DISABLED", name
        renegotiation = scan["scan_result"]["session_renegotiation"]["result"]
        assert renegotiation["client_renegotiations_success_count"] == 0, name


def weak_context(tls: WebTls) -> ssl.SSLContext:
    """What the checks must catch: TLS 1.0 and up, every suite OpenSSL has (CBC, anonymous
    ones included), and client-initiated renegotiation allowed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():  # TLS 1.0 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.options |= ALLOW_CLIENT_RENEGOTIATION
    context.load_cert_chain(tls.cert, tls.key)
    return context


async def test_the_checks_find_a_weak_tls_configuration(deployed: Deployed, tmp_path: Path) -> None:
    tls = web_tls(deployed.config, "console", deployed.data_dir)
    assert tls is not None
    runner = web.AppRunner(web.Application())
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=weak_context(tls)).start()
        port = runner.addresses[0][1]
        scan = await sslyze(f"127.0.0.1:{port}", tmp_path / "weak.json", *SCANS)
    finally:
        await runner.cleanup()
    found = findings(scan)
    assert "tls_1_0 offered" in found and "tls_1_1 offered" in found, found
    assert "weak suite TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA" in found, found
    assert any(f.startswith("weak suite TLS_ECDH_anon_") for f in found), found
    assert "client-initiated renegotiation" in found, found


async def test_behind_a_proxy_the_console_and_the_listener_speak_no_tls_of_their_own(
    deployed: Deployed, tmp_path: Path
) -> None:
    """plain_http = true: plain HTTP on loopback for the TLS reverse proxy in front
    (docs/CONSOLE.md, docs/PROVIDERS.md), so no weak TLS of theirs can be offered."""
    plain = ServedTls(plain_http=True)
    config = replace(
        deployed.config,
        console=replace(deployed.config.console, tls=plain),
        notify=replace(deployed.config.notify, tls=plain),
    )
    assert web_tls(config, "console", deployed.data_dir) is None
    assert web_tls(config, "notify", deployed.data_dir) is None
    async with AsyncExitStack() as stack:
        served = {
            "console": await served_console(deployed, stack, tmp_path / "pki" / "staff.json", None),
            "listener": await served_listener(deployed, stack, None),
        }
        for name, url in served.items():
            assert url.startswith("http://"), url
            scan = await sslyze(url.removeprefix("http://"), tmp_path / f"{name}.json", "--tlsv1_2")
            assert scan["connectivity_status"] == "ERROR", name
            assert "could not find a TLS version" in scan["connectivity_error_trace"], name
