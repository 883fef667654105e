"""After a load run: no order is double-charged and every attempt is final.

Checked through windowpay's own API (GetOrder) and, when the providers are the local
sandboxes, against what their ledgers kept. Usable on its own:

    python -m loadtest.consistency --data-dir var --orders orders.txt
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path

import grpc

from loadtest.channel import open_channel
from orchestrator.access import client
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.generated.windowpay.v1 import windowpay_pb2_grpc as pb_grpc
from orchestrator.record.consistency import record_problems

FINAL = {pb.SUCCEEDED, pb.FAILED, pb.REVERSED, pb.LATE_SUCCESS_REFUNDED}


def _kept_at_provider(base_url: str, attempt_id: str) -> int:
    """Money the provider kept for the attempt (paid minus refunded), 0 if none."""
    try:
        with urllib.request.urlopen(f"{base_url}/_sandbox/trades/{attempt_id}", timeout=10) as r:
            trade = json.load(r)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return 0
        raise
    if trade["state"] not in ("SUCCESS", "REFUND"):
        return 0
    return int(trade["amount_fen"]) - sum(int(f["amount_fen"]) for f in trade["refunds"])


def _kept_in_cash(order: pb.Order) -> int:
    kept = 0
    for attempt in order.attempts:
        if attempt.channel == pb.CASH and attempt.state == pb.SUCCEEDED:
            back = sum(
                r.amount_fen
                for r in order.refunds
                if r.attempt_id == attempt.attempt_id and r.state == pb.REFUND_SUCCEEDED
            )
            kept += attempt.amount_fen - back
    return kept


def _read(stub: pb_grpc.TerminalStub, order_id: str, patience_s: float = 120.0) -> pb.Order:
    """One GetOrder, paced by the front door: the auditor reads at its own rate limit
    (20 calls/s by default), so a RESOURCE_EXHAUSTED is waited out, not a problem."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            order: pb.Order = stub.GetOrder(pb.GetOrderRequest(order_id=order_id), timeout=30)
            return order
        except grpc.RpcError as error:
            limited = error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
            if not limited or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def check(
    target: str,
    order_ids: Iterable[str],
    sandboxes: Mapping[str, str] | None = None,
    settle_s: float = 120.0,
    identity: client.Identity | None = None,
    data_dir: Path | None = None,
) -> list[str]:
    """Problems found (empty when all is well); waits up to `settle_s` for attempts that
    are still under way to end."""
    problems = []
    # Over mutual TLS, as the read-only auditor (from ./var/run.json unless given).
    with open_channel(target, identity or client.resolve("auditor")) as channel:
        stub = pb_grpc.TerminalStub(channel)
        deadline = time.monotonic() + settle_s
        for order_id in order_ids:
            order = _read(stub, order_id)
            while any(a.state not in FINAL for a in order.attempts) and time.monotonic() < deadline:
                time.sleep(0.5)
                order = _read(stub, order_id)
            unfinished = [a.attempt_id for a in order.attempts if a.state not in FINAL]
            if unfinished:
                problems.append(f"{order_id}: attempts not final: {unfinished}")
            succeeded = [a for a in order.attempts if a.state == pb.SUCCEEDED]
            if len(succeeded) > 1:
                problems.append(f"{order_id}: paid by {len(succeeded)} attempts")
            if (order.state in (pb.PAID, pb.PARTIALLY_REFUNDED, pb.REFUNDED)) != bool(succeeded):
                problems.append(f"{order_id}: {pb.OrderState.Name(order.state)} / {len(succeeded)}")
            if sandboxes:
                kept = sum(
                    _kept_at_provider(sandboxes[pb.Channel.Name(a.channel)], a.attempt_id)
                    for a in order.attempts
                    if a.channel != pb.CASH and pb.Channel.Name(a.channel) in sandboxes
                )
                cash = _kept_in_cash(order)
                if kept + cash > order.amount_fen:
                    problems.append(
                        f"{order_id}: charged {kept + cash} fen for an order of {order.amount_fen}"
                    )
    if data_dir is not None:  # the PostgreSQL record must equal Redis
        problems += record_problems(data_dir, settle_s)
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("var"))
    parser.add_argument("--orders", type=Path, required=True, help="one order id per line")
    args = parser.parse_args()
    run = json.loads((args.data_dir / "run.json").read_text())
    orders = [line.strip() for line in args.orders.read_text().splitlines() if line.strip()]
    auditor = client.resolve("auditor", data_dir=args.data_dir)
    problems = check(
        run["grpc"], orders, run.get("providers"), identity=auditor, data_dir=args.data_dir
    )
    for problem in problems:
        print(problem)
    print(f"{len(orders)} orders checked, {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
