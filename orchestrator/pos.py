"""`windowpay pos`: a terminal (and business-system) simulator for a running windowpay.

windowpay pos create --window W01 --fee PLT-AUTO --fee DOC-VLIC
windowpay pos pay --terminal T01 --channel wechat --code 0000
windowpay pos pay --terminal T01 --channel alipay --qr     (the payer scans a QR code)
windowpay pos scan URL --behaviour pay                     (plays the payer's phone)
windowpay pos watch --terminal T01
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import io
import os
import random
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import grpc
import segno
from google.protobuf.json_format import MessageToJson

from orchestrator.access import client
from orchestrator.channels.registry import spec
from orchestrator.console import slip
from orchestrator.domain.money import to_yuan
from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.generated.windowpay.v1 import windowpay_pb2_grpc as pb_grpc
from orchestrator.runfile import RunInfo
from orchestrator.sandbox.common import PayerBehaviour
from orchestrator.sandbox.payer import ScanRefused, scan

CHANNELS = {channel.value.lower(): pb.Channel.Value(channel.value) for channel in Channel}
FINAL_ATTEMPTS = (pb.SUCCEEDED, pb.FAILED, pb.REVERSED, pb.LATE_SUCCESS_REFUNDED)
POLL_S = 1.0
PROGRESS_EVERY_S = 10.0
CLOSE_GRACE_S = 60.0  # after the code's expiry: time for windowpay to close the trade
PIN_ENV = "WINDOWPAY_SUPERVISOR_PIN"


def sandbox_code(channel: str, ending: str) -> str:
    """A well-formed auth code for the channel whose last four digits pick the sandbox
    behaviour (0000 pays at once, 1111 payer confirms later, ... see the README)."""
    rule = spec(Channel(channel.upper())).auth_code
    middle = rule.sample_length - len(rule.sample_prefix) - len(ending)
    digits = "".join(random.choice("0123456789") for _ in range(middle))
    return f"{rule.sample_prefix}{digits}{ending}"


def describe(order: pb.Order) -> str:
    lines = [
        f"order {order.order_id}  {pb.OrderState.Name(order.state)}  "
        f"{to_yuan(order.amount_fen)} yuan  (case {order.business_no}, window {order.window_id})"
    ]
    for line in order.lines:
        lines.append(
            f"  {line.fee_code:<15} {line.name} x{line.quantity}  {to_yuan(line.amount_fen)}"
        )
    for attempt in order.attempts:
        reason = f"  ({attempt.failure_reason})" if attempt.failure_reason else ""
        lines.append(
            f"  attempt {attempt.attempt_id} {pb.Channel.Name(attempt.channel)} "
            f"{pb.AttemptState.Name(attempt.state)}{reason}"
        )
    for refund in order.refunds:
        kind = "automatic refund" if refund.automatic else "refund"
        lines.append(
            f"  {kind} {refund.refund_id} {to_yuan(refund.amount_fen)} "
            f"{pb.RefundState.Name(refund.state)}  ({refund.reason})"
        )
    return "\n".join(lines)


def _show(order: pb.Order, as_json: bool) -> None:
    print(MessageToJson(order, ensure_ascii=False) if as_json else describe(order), flush=True)


def _fee_line(text: str) -> pb.OrderLine:
    code, _, quantity = text.partition(":")
    try:
        return pb.OrderLine(fee_code=code, quantity=int(quantity or "1"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use CODE or CODE:QUANTITY") from None


async def _open_order(channel: grpc.aio.Channel, terminal: str) -> pb.Order:
    """The first open order of the terminal's window, as WatchWindow shows it."""
    stub = pb_grpc.TerminalStub(channel)
    stream = stub.WatchWindow(pb.WatchWindowRequest(terminal_id=terminal), timeout=5)
    try:
        async for order in stream:
            if order.state == pb.AWAITING_PAYMENT:
                return order
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
    finally:
        stream.cancel()
    raise SystemExit(f"no order awaiting payment at the window of terminal {terminal}")


def _principal(args: argparse.Namespace) -> str:
    """Who the action is done as: the terminal for terminal work, else the business system."""
    if args.action in ("pay", "watch", "refund") or (args.action == "get" and args.terminal):
        return str(args.terminal)
    return "business"


async def _run(args: argparse.Namespace) -> None:
    identity = client.from_args(args, _principal(args))
    async with identity.channel(args.target) as channel:
        business = pb_grpc.BusinessGatewayStub(channel)
        terminal = pb_grpc.TerminalStub(channel)
        if args.action == "create":
            order = await business.CreateOrder(
                pb.CreateOrderRequest(
                    request_id=args.request_id or uuid.uuid4().hex,
                    business_no=args.business_no or f"B{uuid.uuid4().hex[:12].upper()}",
                    window_id=args.window,
                    payer_name=args.payer,
                    lines=args.fee,
                ),
                timeout=10,
            )
            _show(order, args.json)
        elif args.action == "pay" and args.qr:
            await _pay_by_qr(args, channel, terminal)
        elif args.action == "pay":
            order_id = args.order or (await _open_order(channel, args.terminal)).order_id
            code = "" if args.channel == "cash" else args.code
            if len(code) == 4:
                code = sandbox_code(args.channel, code)
            print(f"paying {order_id} with {args.channel} {code or ''}".rstrip(), flush=True)
            order = await terminal.Pay(
                pb.PayRequest(
                    request_id=args.request_id or uuid.uuid4().hex,
                    terminal_id=args.terminal,
                    order_id=order_id,
                    channel=CHANNELS[args.channel],
                    auth_code="" if args.channel == "cash" else code,
                    cash_received_fen=args.cash,
                ),
                timeout=args.wait or 90.0,
            )
            _show(order, args.json)
            console = args.console or slip.console_of()
            if order.state == pb.PAID and console and not args.json:
                print(slip.slip(console, await slip.receipt_of(channel, order.order_id)))
        elif args.action == "watch":
            async for order in terminal.WatchWindow(
                pb.WatchWindowRequest(terminal_id=args.terminal)
            ):
                _show(order, args.json)
        elif args.action == "get":
            request = (
                pb.GetOrderRequest(business_no=args.business_no)
                if args.business_no
                else pb.GetOrderRequest(order_id=args.order_id)
            )
            reader = terminal if args.terminal else business
            _show(await reader.GetOrder(request, timeout=10), args.json)
        elif args.action == "refund":
            order = await terminal.Refund(
                pb.RefundRequest(
                    request_id=args.request_id or uuid.uuid4().hex,
                    terminal_id=args.terminal,
                    order_id=args.order_id,
                    amount_fen=args.amount,
                    reason=args.reason,
                    supervisor_id=args.supervisor,
                    supervisor_pin=args.supervisor_pin,
                ),
                timeout=args.wait,
            )
            _show(order, args.json)
        elif args.action == "cancel":
            order = await business.CancelOrder(
                pb.CancelOrderRequest(
                    request_id=args.request_id or uuid.uuid4().hex,
                    order_id=args.order_id,
                    reason=args.reason,
                ),
                timeout=10,
            )
            _show(order, args.json)


def qr_drawing(url: str) -> str:
    """The QR code of `url` as terminal text, to be scanned from the screen."""
    drawing = io.StringIO()
    segno.make(url, error="m").terminal(out=drawing, compact=True)
    return drawing.getvalue()


async def _pay_by_qr(
    args: argparse.Namespace, channel: grpc.aio.Channel, terminal: pb_grpc.TerminalAsyncStub
) -> None:
    """Ask for a QR code, show it, and follow the order until the attempt is final."""
    if args.channel == "cash":
        raise SystemExit("windowpay pos pay: cash is paid at the counter, not by a QR code")
    order_id = args.order or (await _open_order(channel, args.terminal)).order_id
    print(f"asking {args.channel} for a QR code for {order_id}", flush=True)
    order = await terminal.Pay(
        pb.PayRequest(
            request_id=args.request_id or uuid.uuid4().hex,
            terminal_id=args.terminal,
            order_id=order_id,
            channel=CHANNELS[args.channel],
            mode=pb.PAYER_SCANS_QR,
        ),
        timeout=30,
    )
    attempt = order.attempts[-1]
    if attempt.state in FINAL_ATTEMPTS or not attempt.qr_code_url:
        _show(order, args.json)
        return
    expires = attempt.qr_expires_at.ToSeconds()
    if not args.json:
        print(qr_drawing(attempt.qr_code_url), flush=True)
        print(f"scan to pay {to_yuan(order.amount_fen)} yuan: {attempt.qr_code_url}")
        print(f"the code is closed at {time.strftime('%H:%M:%S', time.localtime(expires))}")
        print(f"(sandbox: windowpay pos scan {attempt.qr_code_url} --behaviour pay)", flush=True)
    deadline = time.time() + args.wait if args.wait else expires + CLOSE_GRACE_S
    await _follow(terminal, order, attempt.attempt_id, deadline, args.json)


async def _follow(
    terminal: pb_grpc.TerminalAsyncStub, order: pb.Order, attempt_id: str, deadline: float,
    as_json: bool,
) -> None:  # fmt: skip
    """Print the attempt's progress until it is final (or the deadline passes)."""
    state, said = -1, 0.0
    while True:
        attempt = next(a for a in order.attempts if a.attempt_id == attempt_id)
        if attempt.state in FINAL_ATTEMPTS:
            _show(order, as_json)
            return
        now = time.time()
        if now >= deadline:
            print("still not final; follow it with `windowpay pos get`", flush=True)
            _show(order, as_json)
            return
        if not as_json and (attempt.state != state or now - said >= PROGRESS_EVERY_S):
            left = max(0, int(attempt.qr_expires_at.ToSeconds() - now))
            doing = {
                pb.AWAITING_PAYER: f"waiting for the payer ({left} s left on the code)",
                pb.REVERSING: "the code expired: closing the trade",
            }.get(attempt.state, pb.AttemptState.Name(attempt.state))
            print(f"  {time.strftime('%H:%M:%S')} {doing}", flush=True)
            state, said = attempt.state, now
        await asyncio.sleep(POLL_S)
        order = await terminal.GetOrder(pb.GetOrderRequest(order_id=order.order_id), timeout=10)


async def _scan(args: argparse.Namespace) -> None:
    behaviour = PayerBehaviour(args.behaviour)
    trade = await scan(args.url, behaviour, delay_s=args.delay, notify=not args.no_notify)
    print(
        f"scanned {trade['out_trade_no']} ({to_yuan(trade['amount_fen'])} yuan) at "
        f"{args.url.split('/_sandbox/')[0]}: {behaviour.value}; the trade is {trade['state']}",
        flush=True,
    )


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pos = subparsers.add_parser(
        "pos",
        help="terminal simulator: create, pay (by code or QR), scan, watch, get, cancel",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pos.add_argument(
        "--target", help="front door address (default: from run.json, else 127.0.0.1:50051)"
    )
    pos.add_argument("--data-dir", type=Path, default=Path("var"),
                     help="where `windowpay serve` left run.json (default: ./var)")  # fmt: skip
    pos.add_argument("--json", action="store_true", help="print orders as JSON")
    client.add_arguments(pos)
    actions = pos.add_subparsers(dest="action", required=True)

    create = actions.add_parser("create", help="create an order (as the business system)")
    create.add_argument("--window", required=True, help="window id, e.g. W01")
    create.add_argument(
        "--fee", required=True, action="append", type=_fee_line,
        help="fee code, optionally with quantity: PLT-AUTO or DOC-VLIC:2 (repeatable)",
    )  # fmt: skip
    create.add_argument("--business-no", help="business case number (default: a new one)")
    create.add_argument("--payer", default="张三", help="payer name")
    create.add_argument("--request-id", help="idempotency key (default: a new one)")

    pay = actions.add_parser("pay", help="pay an order at a terminal")
    pay.add_argument("--terminal", required=True, help="terminal id, e.g. T01")
    pay.add_argument("--order", help="order id (default: the window's open order)")
    pay.add_argument("--channel", choices=sorted(CHANNELS), default=next(iter(CHANNELS)))
    pay.add_argument(
        "--code", default="0000",
        help="payer auth code, or just its last 4 digits to pick a sandbox behaviour",
    )  # fmt: skip
    pay.add_argument("--cash", type=int, default=0, help="cash received, in fen (cash only)")
    pay.add_argument(
        "--qr", action="store_true",
        help="the payer scans: show the provider's QR code here and wait for the outcome "
        "(play the payer with `windowpay pos scan URL`)",
    )  # fmt: skip
    pay.add_argument(
        "--wait", type=float,
        help="seconds to wait for the outcome (default 90; with --qr, until the code is "
        "closed)",
    )  # fmt: skip
    pay.add_argument("--request-id", help="idempotency key (default: a new one)")
    pay.add_argument("--console", help="payer lookup base URL (default: var/run.json's)")

    payer = actions.add_parser(
        "scan",
        help="play the payer: scan a sandbox QR code with a behaviour",
        description="The payer's phone, for the sandboxes only: scans the QR code URL that "
        "`pos pay --qr` showed and pays it (or not) as --behaviour says: pay (at once), "
        "delay (after --delay seconds), decline (refused: balance too low), never (never "
        "scans; the code expires and windowpay closes it), after-close (pays just after "
        "windowpay closed the code; windowpay refunds it automatically).",
    )
    payer.add_argument("url", help="the QR code's URL (a sandbox URL on loopback)")
    payer.add_argument(
        "--behaviour", choices=[b.value for b in PayerBehaviour], default="pay",
        help="what the payer does (default: pay)",
    )  # fmt: skip
    payer.add_argument("--delay", type=float, default=5.0, help="seconds, for delay (default 5)")
    payer.add_argument(
        "--no-notify", action="store_true",
        help="the provider sends no notification of this payment (polling must find it)",
    )  # fmt: skip

    watch = actions.add_parser("watch", help="stream the orders of a terminal's window")
    watch.add_argument("--terminal", required=True)

    get = actions.add_parser("get", help="show an order")
    get.add_argument("order_id", nargs="?", default="")
    get.add_argument("--business-no", help="look the order up by business case instead")
    get.add_argument("--terminal", help="read as this terminal (default: the business system)")

    refund = actions.add_parser("refund", help="refund part or all of a paid order")
    refund.add_argument("order_id")
    refund.add_argument("--terminal", required=True, help="a terminal of the paying point")
    refund.add_argument("--amount", type=int, required=True, help="amount in fen")
    refund.add_argument(
        "--supervisor", required=True,
        help=f"who authorises the refund; their PIN is asked for (or read from ${PIN_ENV})",
    )  # fmt: skip
    refund.add_argument("--pin", help=argparse.SUPPRESS)  # refused: see supervisor_pin
    refund.add_argument("--reason", default="refund at the counter")
    refund.add_argument("--wait", type=float, default=60.0, help="seconds to wait")
    refund.add_argument("--request-id", help="idempotency key (default: a new one)")

    cancel = actions.add_parser("cancel", help="cancel an unpaid order")
    cancel.add_argument("order_id")
    cancel.add_argument("--reason", default="withdrawn by the business system")
    cancel.add_argument("--request-id", help="idempotency key (default: a new one)")


class PinOnCommandLine(ValueError):
    pass


def supervisor_pin(args: argparse.Namespace) -> str:
    """The supervisor's PIN from the environment or typed at a prompt that does not echo
    it; never from the command line, where every user of the machine can read it."""
    if args.pin is not None:
        raise PinOnCommandLine(
            f"the PIN is never given on the command line (every process list shows it): "
            f"type it when asked, or set {PIN_ENV}"
        )
    return os.environ.get(PIN_ENV) or getpass.getpass(f"PIN of supervisor {args.supervisor}: ")


def run(args: argparse.Namespace) -> int:
    if args.action == "refund":
        try:
            args.supervisor_pin = supervisor_pin(args)
        except PinOnCommandLine as error:
            print(f"windowpay pos refund: {error}", file=sys.stderr)
            return 2
    if args.action == "scan":
        try:
            asyncio.run(_scan(args))
        except (ScanRefused, ValueError, OSError) as error:
            print(f"windowpay pos scan: {error}", file=sys.stderr)
            return 1
        return 0
    if args.action == "get" and not (args.order_id or args.business_no):
        print("windowpay pos get: give an order id or --business-no", file=sys.stderr)
        return 2
    if args.target is None:
        info = RunInfo.read(args.data_dir)
        args.target = info.grpc if info else "127.0.0.1:50051"
    try:
        asyncio.run(_run(args))
    except client.IdentityError as error:
        print(f"windowpay pos: {error}", file=sys.stderr)
        return 2
    except grpc.aio.AioRpcError as error:
        print(f"{error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the output was piped into something that stopped reading
        return 0
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="windowpay")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))
