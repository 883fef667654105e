"""A micro-benchmark of a sandbox ledger's hot path: what the load tests drive through
each gateway (a payment-code pay that pays at once, one query, a refund of one in ten),
with the ledger in memory and durable (journal.py), one payment at a time and many at
once. Not a test: it prints payments per second and commits (fsyncs) per payment.

    python -m orchestrator.sandbox.bench [--payments N] [--at-once N ...]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from orchestrator.sandbox.bank import SandboxBank, Timing
from orchestrator.sandbox.journal import Journal, LedgerFile


async def _drive(bank: SandboxBank, payments: int, at_once: int) -> float:
    """Seconds to take `payments` payments through `bank`, `at_once` at a time."""
    gate = asyncio.Semaphore(at_once)

    async def one(i: int) -> None:
        async with gate:
            no = f"B{i:012d}"
            await bank.pay(no, f"13{i:012d}0000", 8000, "SP01")
            await bank.query(no)
            if i % 10 == 0:
                await bank.refund(no, f"R{i:012d}", 100)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(payments)))
    return time.perf_counter() - started


async def _run(payments: int, at_once: list[int]) -> None:
    timing = Timing(time_scale=0.0)
    print(f"{payments} payments each: pay + query, a refund of one in ten")
    for concurrency in at_once:
        memory = await _drive(SandboxBank("BENCH", timing), payments, concurrency)
        with tempfile.TemporaryDirectory() as directory:
            journal = Journal(LedgerFile(Path(directory)))
            bank = SandboxBank("BENCH", timing, journal=journal)
            durable = await _drive(bank, payments, concurrency)
            commits = journal.commits
            await journal.close()
        print(
            f"{concurrency:4d} at once: in memory {payments / memory:8.0f}/s, "
            f"durable {payments / durable:8.0f}/s "
            f"({commits / payments:.2f} commits per payment)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.sandbox.bench")
    parser.add_argument("--payments", type=int, default=5000)
    parser.add_argument("--at-once", type=int, nargs="+", default=[1, 20, 200])
    args = parser.parse_args()
    asyncio.run(_run(args.payments, args.at_once))


if __name__ == "__main__":
    main()
