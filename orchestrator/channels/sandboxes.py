"""Runs every sandboxed channel's gateway (from the channel registry), each on its own
loopback port, in one process.

Given a ledger directory (`windowpay serve` gives `<data dir>/sandbox/`), the ledgers are
durable there (orchestrator/sandbox/journal.py) and each gateway listens where it did
before, so that a QR code shown before a restart can still be scanned after it."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import signal
import ssl
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from orchestrator.channels.registry import CHANNELS, ensure_dev_keys, spec
from orchestrator.config import Config, load_config
from orchestrator.domain.states import Channel
from orchestrator.sandbox.bank import SandboxBank, Timing
from orchestrator.sandbox.common import Gateway
from orchestrator.sandbox.journal import SANDBOX_DIR, Journal, LedgerFile, LedgerLock

PORTS = "ports.json"  # in the ledger directory: where each gateway listened last
ORPHAN_CHECK_S = 1.0


@dataclass
class Sandboxes:
    gateways: dict[Channel, Gateway[Any]]
    runners: list[web.AppRunner]
    journal: Journal = field(default_factory=Journal)
    lock: LedgerLock | None = None

    @property
    def base_urls(self) -> dict[Channel, str]:
        return {channel: gateway.base_url for channel, gateway in self.gateways.items()}

    def bank(self, channel: Channel) -> SandboxBank:
        return self.gateways[channel].bank

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        await self.journal.close()
        if self.lock is not None:
            self.lock.release()


def gateways_for(
    config: Config, keys_dir: Path, journal: Journal | None = None
) -> dict[Channel, Gateway[Any]]:
    """A gateway for every channel the config leaves to the sandbox (none for a channel
    that is live: its keys are never read or made here), over ledgers kept by `journal`
    (none: in memory)."""
    sandbox = config.sandbox
    timing = Timing(
        time_scale=config.settings.time_scale,
        confirm_after_s=sandbox.confirm_after_s,
        slow_query_s=sandbox.slow_query_s,
        hang_s=sandbox.hang_s,
        refund_processing_s=sandbox.refund_processing_s,
    )
    gateways: dict[Channel, Gateway[Any]] = {}
    for channel in config.sandboxed():
        bank = SandboxBank(channel.value, timing, journal=journal)
        gateways[channel] = spec(channel).gateway(bank, config.providers[channel], keys_dir)
    return gateways


async def start_sandboxes(
    config: Config,
    keys_dir: Path,
    ports: Mapping[Channel, int] | None = None,
    ledger_dir: Path | None = None,
    notify_ca: Path | None = None,
) -> Sandboxes:
    """Serve every gateway on 127.0.0.1 (on `ports`, else where it listened last, else on
    a free port), with its ledger durable in `ledger_dir` (None: in memory). Notifications
    posted over https trust `notify_ca` (the development CA) if given, else the system's
    roots."""
    trust = ssl.create_default_context(cafile=notify_ca) if notify_ca else None
    ensure_dev_keys(keys_dir, config.sandboxed())
    lock, journal, last = None, Journal(), {}
    if ledger_dir is not None:
        lock = LedgerLock(ledger_dir)
        await asyncio.to_thread(lock.take)
        journal, last = Journal(LedgerFile(ledger_dir)), _ports_used(ledger_dir)
    sandboxes = Sandboxes(gateways_for(config, keys_dir, journal), [], journal, lock)
    try:
        for channel, gateway in sandboxes.gateways.items():
            runner = web.AppRunner(gateway.app, access_log=None, handler_cancellation=False)
            await runner.setup()
            sandboxes.runners.append(runner)
            asked = (ports or {}).get(channel)
            port = await _listen(runner, asked or last.get(channel.value), fixed=bool(asked))
            gateway.base_url = f"http://127.0.0.1:{port}"
            if config.notify.port or config.notify.public_url:
                # (a listener on a free port is not known yet: its starter says where)
                gateway.notify_url = config.notify_url(channel)
            gateway.notify_trust = trust
            gateway.resume()
    except BaseException:
        await sandboxes.stop()
        raise
    if ledger_dir is not None:
        used = {channel.value: int(url.rsplit(":", 1)[1]) for channel, url in
                sandboxes.base_urls.items()}  # fmt: skip
        (ledger_dir / PORTS).write_text(json.dumps(used))
    return sandboxes


async def _listen(runner: web.AppRunner, port: int | None, *, fixed: bool) -> int:
    """Listen on `port`; a port used last time may be taken by now: then on a free one."""
    try:
        await web.TCPSite(runner, "127.0.0.1", port or 0).start()
    except OSError:
        if fixed or not port:
            raise
        await web.TCPSite(runner, "127.0.0.1", 0).start()
    bound: int = runner.addresses[-1][1]
    return bound


def _ports_used(ledger_dir: Path) -> dict[str, int]:
    try:
        used = json.loads((ledger_dir / PORTS).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in used.items() if isinstance(v, int)} if isinstance(used, dict) else {}


class SandboxProcess:
    """The sandbox gateways in a child process (what `windowpay serve` runs), so that
    their signing work never competes with the front door's event loop. Their ledgers
    are durable under `<data_dir>/sandbox/`."""

    def __init__(
        self,
        config: Config,
        keys_dir: Path,
        data_dir: Path | None = None,
        *,
        notify_ca: Path | None = None,
    ) -> None:
        self._args = [sys.executable, "-m", "orchestrator.sandbox", "--keys", str(keys_dir)]
        self._args += ["--time-scale", str(config.settings.time_scale)]
        self._args += ["--notify-base", config.notify.base_url]
        if notify_ca is not None:
            self._args += ["--notify-ca", str(notify_ca)]
        if config.path is not None:
            self._args += ["--config", str(config.path)]
        if data_dir is not None:
            self._args += ["--ledger", str((data_dir / SANDBOX_DIR).resolve())]
        self._process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> dict[Channel, str]:
        self._process = subprocess.Popen(self._args, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        line = self._process.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"the sandbox gateways did not start: {line.strip()!r}")
        return {Channel(name): url for name, url in json.loads(line[6:]).items()}

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    """Set `stop` once the process that started this one is gone (killed without stopping
    us): its successor will want the ledger and the ports."""
    if os.getppid() != parent:
        stop.set()
    else:
        asyncio.get_running_loop().call_later(ORPHAN_CHECK_S, _watch_parent, parent, stop)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.sandbox",
        description="Run every registered channel's sandbox gateway on loopback. "
        "Prints one line 'READY {json of base URLs}' once they listen.",
    )
    parser.add_argument("--config", type=Path, help="deployment TOML (default: the sample)")
    parser.add_argument("--keys", type=Path, required=True, help="keys directory")
    parser.add_argument("--time-scale", type=float, help="multiply every sandbox delay")
    parser.add_argument(
        "--notify-base", help="windowpay's notification listener (default: from the config)"
    )
    parser.add_argument(
        "--notify-ca",
        type=Path,
        help="the CA an https listener's certificate is checked with (default: the system's)",
    )
    parser.add_argument(
        "--ledger", type=Path, help="keep the ledgers durably in this directory (default: memory)"
    )
    for channel in CHANNELS:
        parser.add_argument(f"--{channel.value.lower()}-port", type=int, default=0)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if args.time_scale is not None:
        config = config.with_settings(time_scale=args.time_scale)
    if args.notify_base:
        config = config.with_notify(public_url=args.notify_base)
    ports: dict[Channel, int] = {
        channel: getattr(args, f"{channel.value.lower()}_port") for channel in CHANNELS
    }

    async def run() -> None:
        parent = os.getppid()
        sandboxes = await start_sandboxes(config, args.keys, ports, args.ledger, args.notify_ca)
        urls = {channel.value: url for channel, url in sandboxes.base_urls.items()}
        print(f"READY {json.dumps(urls)}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        _watch_parent(parent, stop)
        await stop.wait()
        await sandboxes.stop()

    asyncio.run(run())
    sys.exit(0)
