"""Runs every sandboxed channel's gateway (from the channel registry), each on its own
loopback port, in one process."""

from __future__ import annotations

import argparse
import asyncio
import json
import select
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from orchestrator.channels.registry import CHANNELS, ensure_dev_keys, spec
from orchestrator.config import Config, load_config
from orchestrator.domain.states import Channel
from orchestrator.embedded_redis import free_port
from orchestrator.sandbox.bank import SandboxBank, Timing
from orchestrator.sandbox.common import Gateway


@dataclass
class Sandboxes:
    gateways: dict[Channel, Gateway[Any]]
    runners: list[web.AppRunner]

    @property
    def base_urls(self) -> dict[Channel, str]:
        return {channel: gateway.base_url for channel, gateway in self.gateways.items()}

    def bank(self, channel: Channel) -> SandboxBank:
        return self.gateways[channel].bank

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


def gateways_for(config: Config, keys_dir: Path) -> dict[Channel, Gateway[Any]]:
    """A gateway for every channel the config leaves to the sandbox (none for a channel
    that is live: its keys are never read or made here)."""
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
        bank = SandboxBank(channel.value, timing)
        gateways[channel] = spec(channel).gateway(bank, config.providers[channel], keys_dir)
    return gateways


async def start_sandboxes(
    config: Config, keys_dir: Path, ports: Mapping[Channel, int] | None = None
) -> Sandboxes:
    """Serve every gateway on 127.0.0.1 (on `ports`, or free ones)."""
    ensure_dev_keys(keys_dir, config.sandboxed())
    gateways = gateways_for(config, keys_dir)
    runners = []
    try:
        for channel, gateway in gateways.items():
            runner = web.AppRunner(gateway.app, access_log=None, handler_cancellation=False)
            await runner.setup()
            runners.append(runner)
            port = (ports or {}).get(channel) or free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            gateway.base_url = f"http://127.0.0.1:{port}"
            if config.notify.port or config.notify.public_url:
                # (a listener on a free port is not known yet: its starter says where)
                gateway.notify_url = config.notify_url(channel)
    except BaseException:
        for runner in runners:
            await runner.cleanup()
        raise
    return Sandboxes(gateways, runners)


class SandboxProcess:
    """The sandbox gateways in a child process (what `windowpay serve` runs), so that
    their signing work never competes with the front door's event loop."""

    def __init__(self, config: Config, keys_dir: Path) -> None:
        self._args = [sys.executable, "-m", "orchestrator.sandbox", "--keys", str(keys_dir)]
        self._args += ["--time-scale", str(config.settings.time_scale)]
        self._args += ["--notify-base", config.notify.base_url]
        if config.path is not None:
            self._args += ["--config", str(config.path)]
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
        sandboxes = await start_sandboxes(config, args.keys, ports)
        urls = {channel.value: url for channel, url in sandboxes.base_urls.items()}
        print(f"READY {json.dumps(urls)}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await sandboxes.stop()

    asyncio.run(run())
    sys.exit(0)
