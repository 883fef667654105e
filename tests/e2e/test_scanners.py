"""sslyze, a TLS scanner no one here wrote, against the served front door, console and
notification listener (docs/SECURITY.md, "What the scanners say").

sslyze lives in a venv of its own (`make sslyze`: .tools/sslyze, from
requirements-sslyze.lock), since it pins an older cryptography than windowpay's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

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
    assert scan["connectivity_status"] == "COMPLETED", scan["connectivity_error_trace"]
    results = scan["scan_result"]
    offered = {version: accepted_suites(results, version) for version in VERSIONS}
    assert offered["ssl_2_0"] == offered["ssl_3_0"] == [], offered
    assert offered["tls_1_0"] == offered["tls_1_1"] == [], offered
    assert offered["tls_1_2"] and offered["tls_1_3"], offered
    assert [s for suites in offered.values() for s in suites if weak(s)] == []
    checks = {name: results[name] for name in ("heartbleed", "openssl_ccs_injection",
              "tls_compression", "session_renegotiation", "robot")}  # fmt: skip
    assert all(c["status"] == "COMPLETED" for c in checks.values()), checks
    assert not checks["heartbleed"]["result"]["is_vulnerable_to_heartbleed"]
    assert not checks["openssl_ccs_injection"]["result"]["is_vulnerable_to_ccs_injection"]
    assert not checks["tls_compression"]["result"]["supports_compression"]
    assert not checks["session_renegotiation"]["result"][
        "is_vulnerable_to_client_renegotiation_dos"
    ]
    assert checks["robot"]["result"]["robot_result"] in (
        "NOT_VULNERABLE_NO_ORACLE", "NOT_VULNERABLE_RSA_NOT_SUPPORTED",
    )  # fmt: skip
    # without a client certificate there is no TLS session to scan at all
    bare = await sslyze(deployed.server.address, tmp_path / "no-client.json", "--tlsv1_2")
    assert bare["connectivity_status"] == "ERROR"
    assert "peer closed the connection" in bare["connectivity_error_trace"]


@pytest.fixture
async def console(deployed: Deployed, tmp_path: Path) -> AsyncIterator[str]:
    config = deployed.config.with_settings(console_port=0)
    async with AsyncExitStack() as stack:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            deployed.database_url, min_size=1, max_size=2, open=False
        )
        await pool.open()
        stack.push_async_callback(pool.close)
        yield await start_console(
            config, pool, RouterCommands(deployed.server.door.router),
            tmp_path / "pki" / "staff.json", stack,
        )  # fmt: skip


async def test_the_console_and_the_listener_speak_no_tls_of_their_own(
    deployed: Deployed, console: str, tmp_path: Path
) -> None:
    """They serve plain HTTP on loopback: TLS in front of them is the reverse proxy's
    (docs/CONSOLE.md, docs/SECURITY.md), so no weak TLS of theirs can be offered."""
    listener = f"127.0.0.1:{deployed.config.notify.port}"
    for name, target in (("console", console.removeprefix("http://")), ("listener", listener)):
        scan = await sslyze(target, tmp_path / f"{name}.json", "--tlsv1_2")
        assert scan["connectivity_status"] == "ERROR", name
        assert "could not find a TLS version" in scan["connectivity_error_trace"], name
