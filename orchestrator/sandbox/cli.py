"""`windowpay sandbox reset`: the sandbox providers' ledgers start afresh.

The ledgers live in `<data dir>/sandbox/` and outlive restarts of `windowpay serve`, as a
real provider's would. Resetting them while the service runs would pull the ground from
under its payments, so the command refuses then: it finds the service through
`<data dir>/run.json` (a live pid), and the sandbox process through the lock it holds on
the ledger directory."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from orchestrator.domain.states import Channel
from orchestrator.runfile import RunInfo
from orchestrator.sandbox.journal import FILE, SANDBOX_DIR, LedgerBusy, LedgerFile, LedgerLock

LEDGERS = [channel.value.lower() for channel in Channel if channel is not Channel.CASH]


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sandbox = commands.add_parser(
        "sandbox",
        help="the sandbox providers' ledgers (kept under DATA_DIR/sandbox)",
        description="The sandbox providers that `windowpay serve` runs keep their ledgers "
        "(trades, refunds, QR codes, notifications on their way) under DATA_DIR/sandbox, "
        "so that a restart forgets nothing.",
    )
    actions = sandbox.add_subparsers(dest="action", required=True)
    reset = actions.add_parser(
        "reset",
        help="forget everything the sandbox ledgers hold",
        description="Start the sandbox ledgers afresh: every trade, refund, QR code and "
        "notification still on its way is forgotten. windowpay's own record keeps them, "
        "so reconciling a day from before the reset reports them as missing at the "
        "provider. Refused while `windowpay serve` runs from DATA_DIR: stop it first.",
    )
    reset.add_argument("--data-dir", type=Path, default=Path("var"), help="default: ./var")
    reset.add_argument(
        "--channel",
        action="append",
        choices=LEDGERS,
        help="reset only this channel's ledger (may be repeated; default: every ledger)",
    )
    reset.set_defaults(handler=run_reset)


def run_reset(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    ledger_dir = data_dir / SANDBOX_DIR
    run = RunInfo.read(data_dir)
    if run is not None and _alive(run.pid):
        return _refuse(f"windowpay serve (pid {run.pid}) is running from {data_dir}; stop it")
    if not (ledger_dir / FILE).exists():
        print(f"no sandbox ledger in {ledger_dir}: nothing to reset")
        return 0
    lock = LedgerLock(ledger_dir)
    try:
        lock.take(wait_s=0)
    except LedgerBusy:
        return _refuse(f"a sandbox process is serving from {ledger_dir}; stop windowpay serve")
    try:
        if args.channel:
            file = LedgerFile(ledger_dir)
            try:
                for name in args.channel:
                    forgotten = file.clear(name.upper())
                    print(f"{name}: {forgotten} ledger entries forgotten")
            finally:
                file.close()
        else:
            for suffix in ("", "-wal", "-shm"):
                (ledger_dir / f"{FILE}{suffix}").unlink(missing_ok=True)
            print(f"the sandbox ledgers in {ledger_dir} start afresh")
    finally:
        lock.release()
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _refuse(why: str) -> int:
    print(f"windowpay sandbox reset: {why}", file=sys.stderr)
    return 1
