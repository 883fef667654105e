"""A synthetic business day written straight into the PostgreSQL record, in the shape
the drainer writes: for the console's benchmark and its tests. Not used by windowpay."""

from __future__ import annotations

import random
from datetime import datetime, tzinfo

from psycopg import AsyncConnection

from orchestrator.domain.records import AttemptRecord, JournalEntry, LineRecord, OrderRecord
from orchestrator.record.writer import DrainedOrder, RecordWriter

FEES = (("PLT-AUTO", "机动车号牌", "副", 10000), ("DOC-VLIC", "行驶证", "本", 1000),
        ("DOC-DLIC", "驾驶证", "本", 1000), ("EXM-K1", "科目一考试", "次", 8000))  # fmt: skip
CHANNELS = ("WECHAT", "ALIPAY", "UNIONPAY", "CASH")


def snapshot(
    order_id: str,
    sp: str,
    window: str,
    created_ms: int,
    *,
    paid_after_s: float | None,
    channel: str = "WECHAT",
    payer_name: str = "张三",
    fees: tuple[int, ...] = (0, 1),
    terminal: str = "",
) -> DrainedOrder:
    lines: list[LineRecord] = [
        {"fee_code": FEES[i][0], "name": FEES[i][1], "unit": FEES[i][2],
         "category": "production", "quantity": 1, "unit_price_fen": FEES[i][3],
         "amount_fen": FEES[i][3]}
        for i in fees
    ]  # fmt: skip
    amount = sum(line["amount_fen"] for line in lines)
    journal: list[JournalEntry] = [
        {"v": 1, "at": created_ms, "what": "created", "order_state": "AWAITING_PAYMENT"}
    ]
    attempts: list[AttemptRecord] = []
    paid_at = None
    attempt_id = ""
    if paid_after_s is not None:
        paid_at = created_ms + int(paid_after_s * 1000)
        attempt_id = f"{order_id}-A1"
        attempts.append({
            "attempt_id": attempt_id, "channel": channel, "state": "SUCCEEDED",
            "amount_fen": amount, "terminal_id": terminal or f"T-{window}",
            "request_id": f"r-{order_id}", "created_at": paid_at - 2000, "finished_at": paid_at,
            "provider_trade_no": f"P{order_id}", "failure_reason": "",
            "auth_code_masked": "", "cash_received_fen": amount if channel == "CASH" else 0,
            "change_fen": 0, "follow_up": False,
        })  # fmt: skip
        journal += [
            {"v": 2, "at": paid_at - 2000, "what": "attempt", "order_state": "PAYING",
             "attempt_id": attempt_id, "attempt_state": "SUBMITTED"},
            {"v": 3, "at": paid_at, "what": "attempt", "order_state": "PAID",
             "attempt_id": attempt_id, "attempt_state": "SUCCEEDED", "detail": "PAID"},
        ]  # fmt: skip
    record: OrderRecord = {
        "order_id": order_id, "business_no": f"B-{order_id}", "service_point_id": sp,
        "window_id": window, "payer_name": payer_name, "lines": lines, "amount_fen": amount,
        "catalog_version": "2026-01-01", "state": "PAID" if paid_at else "AWAITING_PAYMENT",
        "created_at": created_ms, "expires_at": created_ms + 8 * 3600_000,
        "version": len(journal), "paid_at": paid_at, "paid_by": attempt_id, "cancel_reason": "",
        "refunded_fen": 0, "attempts": attempts, "refunds": [],
    }  # fmt: skip
    return DrainedOrder(record, journal)


def day_of_orders(
    count: int, day: datetime, points: int = 20, windows_per_point: int = 3, seed: int = 7
) -> list[DrainedOrder]:
    """`count` orders over 08:30-17:30 of `day` (a zone-aware midnight); 9 in 10 paid."""
    rng = random.Random(seed)
    start = int(day.timestamp() * 1000) + 8 * 3600_000 + 30 * 60_000
    orders = []
    for n in range(count):
        sp = f"SP{n % points:02d}"
        window = f"{sp}-W{rng.randrange(windows_per_point)}"
        created = start + rng.randrange(9 * 3600_000)
        paid = rng.random() < 0.9
        orders.append(
            snapshot(
                f"{sp}-{day:%m%d}{n:06d}",
                sp,
                window,
                created,
                paid_after_s=rng.uniform(20, 300) if paid else None,
                channel=rng.choice(CHANNELS),
                fees=(rng.randrange(4),),
            )
        )
    return orders


async def write(database_url: str, orders: list[DrainedOrder], zone: tzinfo) -> None:
    writer = RecordWriter(zone)
    async with await AsyncConnection.connect(database_url) as conn:
        for i in range(0, len(orders), 500):
            await writer.write(conn, orders[i : i + 500])
