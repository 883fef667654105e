"""How long `windowpay audit verify` takes over a province-sized day.

A day is generated straight into a private PostgreSQL (the record's schema): orders paid
in cash at many service points, one in ten partly refunded, their journal entries
chained and hashed as the service-point actor does (3 entries an order, 5 when
refunded), with the orders, lines, attempts and refunds rows beside them. The day is
closed with a throwaway audit key, then verified (without Redis, as an auditor does once
the day has left it). Run alone:

    python -m loadtest.audit_bench --entries 1000000 --service-points 320
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.audit.job import close_day
from orchestrator.audit.roots import Totals, sign, store_roots, write_file
from orchestrator.audit.verify import Verifier
from orchestrator.record import migrate
from orchestrator.record.embedded import EmbeddedPostgres
from orchestrator.record.partitions import Partitions
from orchestrator.store import chain

DAY = date(2026, 12, 1)
LINES = [["PLT-AUTO", 1, 10000, 10000], ["DOC-VLIC", 1, 1000, 1000]]
AMOUNT = 11000


def _order(sp: str, n: int, at: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One order's journal entries (unlinked) and its final rows."""
    order_id = f"{sp}-{n:010d}"
    window, terminal = f"{sp}W{n % 3 + 1}", f"{sp}T{n % 3 + 1}"
    attempt = f"{order_id}A1"
    refunded = n % 10 == 0
    order = {"id": order_id, "business_no": f"B{order_id}", "window": window,
             "amount_fen": AMOUNT, "refunded_fen": 0}  # fmt: skip

    def entry(v: int, what: str, state: str, **more: Any) -> dict[str, Any]:
        return {"v": v, "at": at + v, "what": what, "order_state": state, **more}

    pay = {"id": attempt, "channel": "CASH", "amount_fen": AMOUNT, "terminal": terminal}
    entries = [
        {**entry(1, "created", "AWAITING_PAYMENT"), "order": {**order, "state": "AWAITING_PAYMENT"},
         "lines": LINES},
        {**entry(2, "attempt", "PAYING", attempt_id=attempt, attempt_state="SUBMITTED",
                 detail="CASH"), "order": {**order, "state": "PAYING"},
         "attempt": {**pay, "state": "SUBMITTED"}},
        {**entry(3, "attempt", "PAID", attempt_id=attempt, attempt_state="SUCCEEDED",
                 detail="SUCCEEDED"), "order": {**order, "state": "PAID"},
         "attempt": {**pay, "state": "SUCCEEDED"}},
    ]  # fmt: skip
    final = {"order_id": order_id, "sp": sp, "window": window, "version": 3, "state": "PAID",
             "refunded_fen": 0, "attempt": attempt, "terminal": terminal, "at": at,
             "refund": None}  # fmt: skip
    if refunded:
        refund_id = f"{attempt}R1"
        refund = {"id": refund_id, "attempt": attempt, "amount_fen": 500, "supervisor": "S1",
                  "terminal": terminal, "automatic": False}  # fmt: skip
        done = {**order, "state": "PARTIALLY_REFUNDED", "refunded_fen": 500}
        entries += [
            {**entry(4, "refund", "PAID", attempt_id=attempt, refund_id=refund_id, detail="退费",
                     supervisor_id="S1", terminal_id=terminal, amount_fen=500),
             "order": {**order, "state": "PAID"}, "refund": {**refund, "state": "PENDING"}},
            {**entry(5, "refund", "PAID", attempt_id=attempt, refund_id=refund_id,
                     detail="SUCCEEDED"), "order": done,
             "refund": {**refund, "state": "SUCCEEDED"}},
        ]  # fmt: skip
        final.update(version=5, state="PARTIALLY_REFUNDED", refunded_fen=500, refund=refund_id)
    return entries, final


async def generate(url: str, entries: int, points: int) -> dict[str, Totals]:
    """Write the day; each service point's totals, as its chain's head says them."""
    start = int(datetime(2026, 12, 1, 1, 0, tzinfo=UTC).timestamp() * 1000)
    per_point = max(1, entries // points)
    totals: dict[str, Totals] = {}
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await Partitions().ensure(conn, [DAY])  # the record is partitioned by business day
        await conn.execute("INSERT INTO movement_days VALUES (%s, %s)", (DAY, DAY))
        for p in range(points):
            sp = f"SP{p:03d}"
            head = chain.Head()
            journal: list[tuple[Any, ...]] = []
            orders: list[tuple[Any, ...]] = []
            lines: list[tuple[Any, ...]] = []
            attempts: list[tuple[Any, ...]] = []
            refunds: list[tuple[Any, ...]] = []
            n = 0
            while len(journal) < per_point:
                unlinked, final = _order(sp, n, start + n * 1000)
                for content in unlinked:
                    linked, head = chain.link(content, sp, DAY.isoformat(), head, f"{sp}/1")
                    journal.append((
                        final["order_id"], linked["v"], linked["at"], linked["what"],
                        linked["order_state"], orjson.dumps(linked).decode(), sp, DAY, head.n,
                        linked["chain"]["prev"], head.hash, DAY,
                    ))  # fmt: skip
                oid, at = final["order_id"], final["at"]
                orders.append((
                    oid, final["version"], sp, final["window"], f"B{oid}", "张三", AMOUNT,
                    final["state"], "2026-01-01", at, DAY, at + 3, DAY, final["attempt"],
                    "CASH", final["refunded_fen"], "{}",
                ))  # fmt: skip
                lines += [(oid, i, *line[:1], "n", "u", "c", *line[1:], DAY) for i, line in
                          enumerate(LINES)]  # fmt: skip
                attempts.append((
                    final["attempt"], oid, "CASH", "SUCCEEDED", AMOUNT, final["terminal"], "r",
                    at, at + 3, DAY, "", "", False, DAY,
                ))  # fmt: skip
                if final["refund"]:
                    refunds.append((
                        final["refund"], oid, final["attempt"], 500, "SUCCEEDED", "退费", "S1",
                        final["terminal"], False, at + 4, at + 5, DAY, "", "", DAY,
                    ))  # fmt: skip
                n += 1
            async with conn.cursor() as cur:
                for table, rows in (("orders", orders), ("order_lines", lines),
                                    ("attempts", attempts), ("refunds", refunds),
                                    ("journal", journal)):  # fmt: skip
                    columns = _COLUMNS[table]
                    async with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                        for row in rows:
                            await copy.write_row(row)
            await conn.commit()
            paid = len(orders)
            refunded = len(refunds)
            totals[sp] = Totals(head.n, head.hash, paid, paid * AMOUNT, refunded, refunded * 500)
    return totals


_COLUMNS = {
    "orders": "order_id, version, service_point_id, window_id, business_no, payer_name, "
    "amount_fen, state, catalog_version, created_at_ms, created_day, paid_at_ms, paid_day, "
    "paid_by, paid_channel, refunded_fen, snapshot",
    "order_lines": "order_id, line_no, fee_code, name, unit, category, quantity, "
    "unit_price_fen, amount_fen, order_day",
    "attempts": "attempt_id, order_id, channel, state, amount_fen, terminal_id, request_id, "
    "created_at_ms, finished_at_ms, finished_day, provider_trade_no, failure_reason, follow_up, "
    "order_day",
    "refunds": "refund_id, order_id, attempt_id, amount_fen, state, reason, supervisor_id, "
    "terminal_id, automatic, created_at_ms, finished_at_ms, finished_day, provider_refund_no, "
    "failure_reason, order_day",
    "journal": "order_id, version, at_ms, what, order_state, entry, service_point_id, "
    "chain_day, chain_seq, prev_hash, entry_hash, order_day",
}


async def measure(
    url: str, entries: int, points: int, audit_dir: Path, close: bool
) -> dict[str, Any]:
    started = time.perf_counter()
    totals = await generate(url, entries, points)
    generated_s = time.perf_counter() - started
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("ANALYZE")
    key = Ed25519PrivateKey.generate()
    close_s = None
    async with await psycopg.AsyncConnection.connect(url) as conn:
        started = time.perf_counter()
        if close:  # as `windowpay audit close` does: the chains walked again, then signed
            await close_day(conn, key, DAY, [], audit_dir)
            close_s = round(time.perf_counter() - started, 1)
        else:  # signed from the heads the generator (the actor) kept
            now = int(time.time() * 1000)
            roots = [sign(key, DAY, sp, t, now) for sp, t in sorted(totals.items())]
            write_file(audit_dir, DAY, roots)
            await store_roots(conn, DAY, roots)
        report = await Verifier(conn, public_key=key.public_key(), audit_dir=audit_dir).verify(DAY)
    return {
        "entries": report.entries,
        "service_points": points,
        "generated_s": round(generated_s, 1),
        "close_s": close_s,
        "verify_s": round(report.seconds, 1),
        "verify_entries_per_s": round(report.entries / report.seconds),
        "findings": len(report.findings),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--service-points", type=int, default=320)
    parser.add_argument("--database-url", help="an empty database (default: a private one)")
    parser.add_argument(
        "--close", action="store_true", help="also time `audit close` (a second full walk)"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="windowpay-audit-bench-"))
    root.chmod(0o755)
    postgres = None
    try:
        url = args.database_url
        if not url:
            postgres = EmbeddedPostgres(root / "pg")
            postgres.start()
            url = postgres.create_database("audit_bench")
        migrate.upgrade(url)
        result = asyncio.run(
            measure(url, args.entries, args.service_points, root / "audit", args.close)
        )
        print(json.dumps(result))
    finally:
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
