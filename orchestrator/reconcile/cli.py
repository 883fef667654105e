"""`windowpay reconcile` and `windowpay settlement`: the daily back-office commands.

They find a running deployment through `<data-dir>/run.json` (written by `windowpay
serve`), or through --redis-url / --target and the config."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from contextlib import AsyncExitStack
from datetime import date
from pathlib import Path

import grpc
import orjson
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from orchestrator.access import client
from orchestrator.channels.factory import build_providers
from orchestrator.channels.registry import spec
from orchestrator.config import Config, ConfigError, load_config
from orchestrator.domain.money import to_yuan
from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.generated.windowpay.v1 import windowpay_pb2_grpc as pb_grpc
from orchestrator.reconcile import recorded
from orchestrator.reconcile.job import Healed, load_orders, reconcile
from orchestrator.reconcile.matcher import Difference
from orchestrator.record.reader import RecordReader
from orchestrator.record.recorded_reads import RecordedReads
from orchestrator.runfile import RunInfo
from orchestrator.store import keys
from orchestrator.store.connect import connect
from orchestrator.store.reads import OrderReads, RedisOrderReads
from orchestrator.store.redis_store import RedisStore


class BackOfficeHealer:
    """Heals a late success by asking the back office to refund it (idempotently). The
    difference is resolved only once the money is back with the payer: until then the
    command exits 1, and a run after the refund went through finds nothing to heal.

    The front door refunds only attempts reconciliation found kept by the provider, so
    the finding (the provider's trade number) is recorded first."""

    def __init__(self, channel: grpc.aio.Channel, store: RedisStore) -> None:
        self._stub = pb_grpc.BackOfficeStub(channel)
        self._store = store

    async def __call__(self, difference: Difference, day: date) -> Healed:
        await self._store.record_late_success(difference.out_trade_no, difference.trade_no)
        # A new request per try: a re-run after a refused refund starts another one,
        # a re-run while one is under way is answered with the order as it was.
        request = pb.LateSuccessRequest(
            request_id=(f"recon-{day:%Y%m%d}-{difference.out_trade_no}-{difference.refund_tries}"),
            order_id=difference.order_id,
            attempt_id=difference.out_trade_no,
            provider_trade_no=difference.trade_no,
            reason=f"reconciliation {day}: {difference.detail}"[:200],
        )
        order = await self._stub.SettleLateSuccess(request, timeout=30)
        state = _late_refund_state(order, difference.out_trade_no)
        name = pb.RefundState.Name(state) if state is not None else "none"
        if state == pb.REFUND_SUCCEEDED:
            return Healed(f"late success refunded automatically (refund {name})", True)
        return Healed(
            f"late success being refunded automatically (refund {name}); run again", False
        )


def _late_refund_state(order: pb.Order, attempt_id: str) -> pb.RefundState.ValueType | None:
    tries = [r for r in order.refunds if r.automatic and r.attempt_id == attempt_id]
    return tries[-1].state if tries else None


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use YYYY-MM-DD") from None


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    recon = commands.add_parser(
        "reconcile",
        help="reconcile one day with every provider's bill",
        description=(
            "Download each provider's bill of the day through its protocol, match it with "
            "windowpay's records, refund late successes automatically, list every other "
            "difference. Exit status 0 when every difference is explained or healed, 1 "
            "otherwise, 2 when it cannot run."
        ),
    )
    recon.add_argument("--date", type=_day, required=True, help="YYYY-MM-DD (local day)")
    recon.add_argument("--json", type=Path, help="write the report as JSON here")
    recon.add_argument("--csv", type=Path, help="write the differences as CSV here")
    recon.add_argument("--no-heal", action="store_true", help="report only, change nothing")
    _common(recon)
    recon.set_defaults(handler=run_reconcile)

    settle = commands.add_parser(
        "settlement", help="end-of-day settlement per window and channel (日结)"
    )
    settle.add_argument("--date", type=_day, required=True, help="YYYY-MM-DD (local day)")
    settle.add_argument("--service-point", default="", help="only this service point")
    _common(settle)
    settle.set_defaults(handler=run_settlement)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path("var"), help="default: ./var")
    parser.add_argument("--config", type=Path, help="deployment TOML (default: as served)")
    parser.add_argument("--redis-url", help="default: the running deployment's")
    parser.add_argument("--database-url", help="the record (default: the running deployment's)")
    parser.add_argument("--target", help="front door address (default: the running one)")
    client.add_arguments(parser)


def _resolve(args: argparse.Namespace) -> tuple[Config, RunInfo | None]:
    info = RunInfo.read(args.data_dir)
    path = args.config or (Path(info.config) if info and info.config else None)
    config = load_config(path)
    if info is not None:
        urls = {Channel(c): url for c, url in info.providers.items() if url}
        config = config.with_base_urls(urls)
    return config, info


def run_reconcile(args: argparse.Namespace) -> int:
    try:
        config, info = _resolve(args)
    except ConfigError as error:
        print(f"windowpay reconcile: bad configuration: {error}", file=sys.stderr)
        return 2
    redis_url = args.redis_url or (info.redis_url if info else None)
    target = args.target or (info.grpc if info else None)
    keys_dir = Path(info.keys_dir) if info else args.data_dir / config.keys_dir
    if redis_url is None or (target is None and not args.no_heal):
        print(
            "windowpay reconcile: no running deployment found in "
            f"{args.data_dir / 'run.json'}; give --redis-url and --target",
            file=sys.stderr,
        )
        return 2
    args.database_url = args.database_url or (info.database_url if info else "") or ""
    identity = None
    if target is not None and not args.no_heal:
        try:
            identity = client.from_args(args, "backoffice")
        except client.IdentityError as error:
            print(f"windowpay reconcile: {error}", file=sys.stderr)
            return 2
    return asyncio.run(_reconcile(args, config, redis_url, target, keys_dir, identity))


async def _reconcile(
    args: argparse.Namespace,
    config: Config,
    redis_url: str,
    target: str | None,
    keys_dir: Path,
    identity: client.Identity | None,
) -> int:
    redis = connect(redis_url)
    stack = AsyncExitStack()
    providers = build_providers(config, keys_dir)
    channel = identity.channel(target) if identity and target else None
    try:
        points = [sp.id for sp in config.deployment.service_points]
        print(f"reading windowpay's records around {args.date} ...", flush=True)
        reads = await _reads(redis, args.database_url, stack)
        orders = await load_orders(reads, points, args.date)
        print(f"{len(orders)} orders with activity", flush=True)
        report = await reconcile(
            args.date,
            orders,
            providers.by_channel,
            config.settings.zone,
            heal=None
            if args.no_heal or channel is None
            else BackOfficeHealer(channel, RedisStore(redis)),
            progress=lambda line: print(line, flush=True),
            bill_day_shifts={
                c: spec(c).bill_day_shift(config.providers[c]) for c in providers.by_channel
            },
        )
        finished_at = time.time()
        await redis.set(keys.RECONCILIATION_SUMMARY, orjson.dumps(report.summary(finished_at)))
        if args.database_url:
            async with await AsyncConnection.connect(args.database_url) as conn:
                await recorded.save(conn, report, int(finished_at * 1000))
            print("result kept in the record (replacing any earlier run of the day)", flush=True)
    finally:
        await stack.aclose()
        await providers.close()
        await redis.aclose()
        if channel is not None:
            await channel.close(None)
    for channel_name, match in report.matches.items():
        print(
            f"  {channel_name.value:<9} matched {match.matched_count} payments "
            f"({to_yuan(match.matched_amount_fen)} yuan), {match.refunds_matched_count} refunds "
            f"({to_yuan(match.refunds_matched_amount_fen)} yuan)"
        )
    for outcome in report.outcomes:
        d = outcome.difference
        print(
            f"  {d.kind.value:<21} {d.provider.value:<9} {d.out_trade_no} {d.out_refund_no} "
            f"windowpay {to_yuan(d.windowpay_amount_fen)} / provider "
            f"{to_yuan(d.provider_amount_fen)}: {d.detail} -> {outcome.action}"
        )
    for channel_name, why in {**report.failures, **report.not_ready}.items():
        print(f"  {channel_name.value}: {why}")
    if args.json:
        report.write_json(args.json)
    if args.csv:
        report.write_csv(args.csv)
    verdict = (
        "every difference explained or healed"
        if report.unexplained == 0
        else (
            f"{report.unexplained} differences left: a person's, or refunds still under way "
            "(run again once they went through)"
        )
    )
    if report.not_ready:
        verdict += "; some bills are not made yet: run the day again later"
    print(f"{args.date}: {len(report.outcomes)} differences; {verdict}", flush=True)
    return 0 if report.unexplained == 0 and not report.not_ready else 1


async def _reads(redis: Redis, database_url: str, stack: AsyncExitStack) -> OrderReads:
    """Windowpay's side read from the PostgreSQL record when there is one."""
    if not database_url:
        return RedisOrderReads(redis)
    pool: AsyncConnectionPool = AsyncConnectionPool(database_url, min_size=1, open=False)
    await pool.open()
    stack.push_async_callback(pool.close)
    return RecordedReads(RedisOrderReads(redis), RecordReader(pool))


def run_settlement(args: argparse.Namespace) -> int:
    info = RunInfo.read(args.data_dir)
    target = args.target or (info.grpc if info else None)
    if target is None:
        print("windowpay settlement: no running deployment; give --target", file=sys.stderr)
        return 2

    try:
        identity = client.from_args(args, "backoffice")
    except client.IdentityError as error:
        print(f"windowpay settlement: {error}", file=sys.stderr)
        return 2

    async def fetch() -> pb.Settlement:
        async with identity.channel(target) as channel:
            stub = pb_grpc.BackOfficeStub(channel)
            request = pb.SettlementRequest(
                date=args.date.isoformat(), service_point_id=args.service_point
            )
            return await stub.GetSettlement(request, timeout=60)

    try:
        settlement = asyncio.run(fetch())
    except grpc.aio.AioRpcError as error:
        print(f"{error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    print(f"settlement of {settlement.date} (日结)")
    columns = ("point", "window", "channel", "payments", "yuan", "refunds", "yuan")
    print("{:<8} {:<8} {:<9} {:>8} {:>12} {:>8} {:>12}".format(*columns))
    for row in settlement.rows:
        print(
            f"{row.service_point_id:<8} {row.window_id:<8} {pb.Channel.Name(row.channel):<9} "
            f"{row.payments:>8} {to_yuan(row.payments_fen):>12} {row.refunds:>8} "
            f"{to_yuan(row.refunds_fen):>12}"
        )
    print(
        f"total: taken {to_yuan(settlement.payments_fen)} yuan, "
        f"given back {to_yuan(settlement.refunds_fen)} yuan"
    )
    return 0
