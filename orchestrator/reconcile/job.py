"""The daily reconciliation: download each provider's bill through its protocol, parse
it, match it with windowpay's records, heal what is safe (late successes are refunded
through the back office), and report the rest for a person.

Re-running a day is harmless: a late success already being refunded is no longer a
difference, and each heal carries a request id derived from the day and the trade.
"""

from __future__ import annotations

import csv
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta, tzinfo
from pathlib import Path
from typing import Any, Protocol

import orjson

from orchestrator.channels.registry import spec
from orchestrator.domain.order import Order
from orchestrator.domain.states import Channel
from orchestrator.providers.bills import BillError, NoTradesThatDay
from orchestrator.providers.port import BillNotReady, PaymentProvider, ProviderError
from orchestrator.reconcile.matcher import Difference, Kind, Match, match
from orchestrator.store.reads import OrderReads

LISTED = "listed for a person"


@dataclass(frozen=True, slots=True)
class Healed:
    action: str
    resolved: bool  # the money is back with the payer: the difference is gone


class Healer(Protocol):
    def __call__(self, difference: Difference, day: date) -> Awaitable[Healed]: ...


@dataclass
class Outcome:
    difference: Difference
    action: str
    resolved: bool


@dataclass
class Report:
    day: date
    matches: dict[Channel, Match] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    failures: dict[Channel, str] = field(default_factory=dict)  # bills that could not be had
    # Bills the provider has not made yet (WeChat's STATEMENT_CREATING): the day is not
    # reconciled for them, but nothing differs either. Run the day again later.
    not_ready: dict[Channel, str] = field(default_factory=dict)

    @property
    def unexplained(self) -> int:
        return sum(not o.resolved for o in self.outcomes) + len(self.failures)

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.day.isoformat(),
            "providers": {
                channel.value: {
                    "bill_rows": m.bill_rows,
                    "matched_count": m.matched_count,
                    "matched_amount_fen": m.matched_amount_fen,
                    "refunds_matched_count": m.refunds_matched_count,
                    "refunds_matched_amount_fen": m.refunds_matched_amount_fen,
                    "explained": m.explained,
                }
                for channel, m in self.matches.items()
            },
            "failures": {channel.value: why for channel, why in self.failures.items()},
            "not_ready": {channel.value: why for channel, why in self.not_ready.items()},
            "differences": [
                {
                    **{k: v for k, v in asdict(o.difference).items() if k != "heal"},
                    "kind": o.difference.kind.value,
                    "provider": o.difference.provider.value,
                    "action": o.action,
                    "resolved": o.resolved,
                }
                for o in self.outcomes
            ],
            "unexplained": self.unexplained,
        }

    def summary(self, finished_at: float) -> dict[str, Any]:
        """What the front doors export as reconciliation metrics."""
        differences = {c.value: dict.fromkeys((k.value for k in Kind), 0) for c in self.matches}
        for outcome in self.outcomes:
            if not outcome.resolved:
                kinds = differences.setdefault(
                    outcome.difference.provider.value, dict.fromkeys((k.value for k in Kind), 0)
                )
                kinds[outcome.difference.kind.value] += 1
        return {
            "date": self.day.isoformat(),
            "finished_at": finished_at,
            "unexplained": self.unexplained,
            "differences": differences,
            "matched_fen": {c.value: m.matched_amount_fen for c, m in self.matches.items()},
        }

    def write_json(self, path: Path) -> None:
        path.write_bytes(orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2))

    def write_csv(self, path: Path) -> None:
        columns = [
            "kind", "provider", "out_trade_no", "out_refund_no", "order_id",
            "windowpay_amount_fen", "provider_amount_fen", "detail", "action", "resolved",
        ]  # fmt: skip
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.to_json()["differences"])


async def load_orders(reads: OrderReads, service_points: Sequence[str], day: date) -> list[Order]:
    """Orders that changed the day before, on, or after the day (a payment near midnight
    may be recorded on the other side of it)."""
    days = [(day + timedelta(days=d)).strftime("%Y%m%d") for d in (-1, 0, 1)]
    return [Order.from_record(order) for order in await reads.orders_of_days(service_points, days)]


async def reconcile(
    day: date,
    orders: list[Order],
    providers: Mapping[Channel, PaymentProvider],
    zone: tzinfo,
    *,
    heal: Healer | None,
    progress: Callable[[str], None] = lambda line: None,
    bill_day_shifts: Mapping[Channel, timedelta] | None = None,
) -> Report:
    """`bill_day_shifts`: by channel, how far its bill's day runs ahead of the calendar
    day (ChannelSpec.bill_day_shift of its settings); none: calendar days."""
    bill_day_shifts = bill_day_shifts or {}
    report = Report(day)
    for channel, provider in providers.items():
        progress(f"{channel.value}: downloading the bill of {day}")
        try:
            rows = spec(channel).parse_bill(await provider.bill(day))
        except BillNotReady as error:
            report.not_ready[channel] = f"bill not ready yet: {error}"
            progress(f"{channel.value}: bill not ready yet ({error}); run the day again later")
            continue
        except NoTradesThatDay:
            rows = []
        except (ProviderError, BillError, TimeoutError) as error:
            report.failures[channel] = f"no usable bill: {error}"
            progress(f"{channel.value}: no usable bill ({error})")
            continue
        result = match(channel, day, rows, orders, zone, bill_day_shifts.get(channel, timedelta(0)))
        report.matches[channel] = result
        progress(
            f"{channel.value}: {len(rows)} rows, {result.matched_count} payments and "
            f"{result.refunds_matched_count} refunds matched, "
            f"{len(result.differences)} differences"
        )
        for difference in result.differences:
            if difference.heal and heal is not None:
                try:
                    healed = await heal(difference, day)
                except Exception as error:  # a heal that failed is listed, not lost
                    report.outcomes.append(Outcome(difference, f"heal failed: {error}", False))
                    continue
                report.outcomes.append(Outcome(difference, healed.action, healed.resolved))
            else:
                report.outcomes.append(Outcome(difference, LISTED, False))
    return report
