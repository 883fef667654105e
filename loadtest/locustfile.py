"""Locust load scenarios for windowpay, over gRPC.

Each Locust user is one window: its POS terminal and the business system behind it.
It creates the order for a case, often watches the window until the order shows, scans
the payer's code and pays (channels and sandbox behaviours mixed as the scenario says),
sometimes sends Pay again with the same request id (some copies at once), sometimes
withdraws the case, and pays again another way when a payment fails.

    .venv/bin/locust -f loadtest/locustfile.py --headless --scenario steady_day \\
        --csv var/load/steady_day

Scenarios (--scenario, also their tags): steady_day, morning_rush, slow_payers,
retry_storm, provider_brownout. The target is the deployment `windowpay serve` left in
--data-dir (run.json). Each call is timed from the moment it is sent to its answer; a
Pay held on purpose by the sandbox (a payer confirming, a provider hanging) is reported
under its own name. A run exits non-zero when its failure ratio or a name's p99 passes
the scenario's thresholds, or when the consistency check afterwards finds an order
charged twice or an attempt not final; with `--latency report` the p99 limits are only
printed (the test suite's runs, which judge correctness, not this machine's speed). It
ends with a table of Locust's figures beside the front door's own histogram for the
same window of time.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import grpc
from locust import LoadTestShape, User, events, tag, task
from locust.env import Environment

from loadtest import channel as wire
from loadtest import report, serverview
from loadtest.consistency import check
from loadtest.scenarios import FEE_MIX, Scenario, pay_name, registry
from orchestrator.access import client
from orchestrator.config import load_config
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.generated.windowpay.v1 import windowpay_pb2_grpc as pb_grpc
from orchestrator.pos import sandbox_code

wire.prepare()

# Each process would hand out every window itself, and keep its own list of orders for
# the consistency check: runs use one process (docs/LOADTESTS.md). Refused here, before
# Locust forks, so that no worker is left waiting for a master that is gone.
if os.environ.get("LOCUST_PROCESSES") or any(
    arg == "--processes" or arg.startswith("--processes=") for arg in sys.argv
):
    raise SystemExit("windowpay's load runs use one Locust process: drop --processes")

log = logging.getLogger("windowpay.load")
SCENARIOS = registry()
CHANNELS = {"wechat": pb.WECHAT, "alipay": pb.ALIPAY, "unionpay": pb.UNIONPAY, "cash": pb.CASH}
FINAL = {pb.SUCCEEDED, pb.FAILED, pb.REVERSED, pb.LATE_SUCCESS_REFUNDED}


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--scenario", choices=sorted(SCENARIOS), default=None,
        help="which scenario to run (default steady_day; `--tags NAME` selects it too)",
    )  # fmt: skip
    parser.add_argument("--data-dir", default="var", help="where `windowpay serve` keeps run.json")
    parser.add_argument(
        "--time-scale", type=float, default=None,
        help="multiply every stage's length: 0.1 runs the scenario ten times shorter",
    )  # fmt: skip
    parser.add_argument(
        "--time-compression", type=float, default=None,
        help="deprecated name of --time-scale (same meaning); removed in the next release",
    )  # fmt: skip
    parser.add_argument(
        "--max-failure-ratio", type=float, default=None,
        help="fail the run above this failure ratio over all calls (default: the scenario's)",
    )  # fmt: skip
    parser.add_argument(
        "--max-p99-ms", action="append", default=[],
        help="MS: p99 limit of every name without its own; NAME=MS: of one name "
        "(e.g. 'Pay (payer confirming)=20000'); repeatable (default: the scenario's)",
    )  # fmt: skip
    parser.add_argument(
        "--latency", choices=("enforce", "report"), default="enforce",
        help="enforce: a p99 above its limit fails the run; report: it is printed and "
        "only the failure ratio and the consistency check decide (default enforce)",
    )  # fmt: skip
    parser.add_argument(
        "--grpc-threads", type=int, default=None,
        help="threads grpc's calls may wait on (default: 4 per window and 8 spare; fewer "
        "make calls queue inside Locust, see docs/LOADTESTS.md)",
    )  # fmt: skip
    parser.add_argument(
        "--settle-seconds", type=float, default=150.0,
        help="how long the consistency check waits for attempts still under way",
    )  # fmt: skip


def chosen(options: Any) -> Scenario:
    """The scenario named by --scenario, or else by the one scenario name in --tags."""
    if options.scenario:
        return SCENARIOS[options.scenario]
    tagged = [t for t in options.tags or [] if t in SCENARIOS]
    if len(tagged) > 1:
        raise SystemExit(f"--tags names {len(tagged)} scenarios ({', '.join(tagged)}); pick one")
    return SCENARIOS[tagged[0] if tagged else "steady_day"]


def time_scale(options: Any) -> float:
    """--time-scale, or the deprecated --time-compression it replaces (same meaning)."""
    if options.time_compression is not None:
        if options.time_scale is not None:
            raise SystemExit("give --time-scale only (--time-compression is its old name)")
        return float(options.time_compression)
    return 1.0 if options.time_scale is None else float(options.time_scale)


class Windows:
    """The deployment's windows, each handed to one user at a time."""

    def __init__(self) -> None:
        self.target = ""
        self.data_dir = Path("var")
        self.redis_url = ""
        self.sandboxes: dict[str, str] = {}
        self.free: list[tuple[str, str]] = []
        self.orders: list[str] = []
        self._lock = threading.Lock()

    def load(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        run = json.loads((data_dir / "run.json").read_text())
        config = load_config(Path(run["config"]) if run["config"] else None)
        self.target = run["grpc"]
        self.redis_url = run["redis_url"]
        self.sandboxes = run["providers"]
        by_window = {w: t for t, w in config.deployment.terminal_window.items()}
        self.free = [
            (w, by_window[w]) for sp in config.deployment.service_points for w in sp.windows
        ]
        random.shuffle(self.free)

    def take(self) -> tuple[str, str] | None:
        with self._lock:
            return self.free.pop() if self.free else None

    def give(self, window: tuple[str, str]) -> None:
        with self._lock:
            self.free.append(window)


WINDOWS = Windows()


class ServerView:
    """The front door's histogram, scraped when the load starts and when it ends."""

    def __init__(self) -> None:
        self.address: str | None = None
        self.before: dict[str, serverview.Histogram] = {}
        self.during: dict[str, serverview.Histogram] | None = None

    def start(self) -> None:
        try:
            self.address = serverview.metrics_address(WINDOWS.redis_url, WINDOWS.target)
            if self.address:
                self.before = serverview.scrape(self.address)
        except Exception as error:  # the run goes on without the server's view
            log.warning("cannot read the front door's metrics: %s", error)
            self.address = None

    def stop(self) -> None:
        if self.address and self.during is None:
            try:
                self.during = serverview.window(self.before, serverview.scrape(self.address))
            except Exception as error:
                log.warning("cannot read the front door's metrics: %s", error)


SERVER = ServerView()


@events.init.add_listener
def _load(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    if options.time_compression is not None:
        log.warning(
            "--time-compression is deprecated and goes in the next release: it is "
            "--time-scale's old name (it multiplies every stage's length; 0.1 is ten "
            "times shorter)"
        )
    time_scale(options)
    chosen(options)
    report.limits(chosen(options).p99_ms, options.max_p99_ms)  # a bad value fails now
    WINDOWS.load(Path(options.data_dir))
    wire.size_for(len(WINDOWS.free), options.grpc_threads)
    if options.csv_prefix and not options.html_file:
        options.html_file = f"{options.csv_prefix}.html"  # Locust's own report, by the CSVs


@events.test_start.add_listener
def _scrape_before(**_: Any) -> None:
    SERVER.start()


@events.test_stop.add_listener
def _scrape_after(**_: Any) -> None:
    SERVER.stop()


def _pick(weights: dict[str, float]) -> str:
    return random.choices(list(weights), weights=list(weights.values()))[0]


class WindowUser(User):
    """One window: its terminal and the business system behind it."""

    def on_start(self) -> None:
        self.scenario = chosen(self.environment.parsed_options)
        self.window = WINDOWS.take()
        self.paying = ""  # the order whose payment is under way
        if self.window is None:
            self.stop()
            return

        def channel(principal: str) -> grpc.Channel:  # mutual TLS, as that principal
            identity = client.resolve(principal, data_dir=WINDOWS.data_dir)
            return wire.open_channel(WINDOWS.target, identity)

        self.business = pb_grpc.BusinessGatewayStub(channel("business"))
        self.terminal = pb_grpc.TerminalStub(channel(self.window[1]))

    def on_stop(self) -> None:
        if getattr(self, "window", None) is None:
            return
        if self.paying:  # stopped mid-payment: the window stays busy until it ends
            gevent.spawn(self._give_back_when_final, self.window, self.paying)
        else:
            WINDOWS.give(self.window)

    def _give_back_when_final(self, window: tuple[str, str], order_id: str) -> None:
        """Hand the window to another user only once its payment is over, so that no
        simulated payer is told "window busy" by a payment this run left behind."""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            order = self._call(
                "GetOrder", self.terminal.GetOrder, pb.GetOrderRequest(order_id=order_id), 10
            )
            if order and order.state != pb.PAYING and all(a.state in FINAL for a in order.attempts):
                break
            gevent.sleep(1.0)
        WINDOWS.give(window)

    def wait_time(self) -> float:
        low, high = self.scenario.think_s
        return random.uniform(low, high)

    @tag(*SCENARIOS)
    @task
    def a_case(self) -> None:
        window, terminal = self.window  # type: ignore[misc]
        lines, _ = random.choices(FEE_MIX, weights=[w for _, w in FEE_MIX])[0]
        create = pb.CreateOrderRequest(
            request_id=uuid.uuid4().hex, business_no=f"L{uuid.uuid4().hex[:16]}",
            window_id=window, payer_name=random.choice(["张三", "李四", "王五"]),
            lines=[pb.OrderLine(fee_code=c, quantity=q) for c, q in lines],
        )  # fmt: skip
        order = self._call("CreateOrder", self.business.CreateOrder, create)
        if order is None:
            return
        WINDOWS.orders.append(order.order_id)
        if random.random() < self.scenario.p_watch:
            self._watch(terminal, order.order_id)
        if random.random() < self.scenario.p_cancel:
            cancel = pb.CancelOrderRequest(
                request_id=uuid.uuid4().hex, order_id=order.order_id, reason="withdrawn"
            )
            self._call("CancelOrder", self.business.CancelOrder, cancel)
            return
        channel = _pick(self.scenario.channels)
        paid = self._pay(terminal, order, channel, _pick(self.scenario.endings))
        if paid is not None and paid.state != pb.PAID:  # declined, reversed: pay in cash
            self._pay(terminal, order, "cash", "")

    def _watch(self, terminal: str, order_id: str) -> None:
        """Follow the window until the new order shows; timed until it does."""

        def until_shown(request: pb.WatchWindowRequest, timeout: float) -> None:
            stream: Iterator[pb.Order] = self.terminal.WatchWindow(request, timeout=timeout)
            try:
                for shown in stream:
                    if shown.order_id == order_id:
                        return
                raise RuntimeError("the watch ended before the order showed")
            finally:
                stream.cancel()  # type: ignore[attr-defined]

        self._call("WatchWindow", until_shown, pb.WatchWindowRequest(terminal_id=terminal), 10)

    def _pay(self, terminal: str, order: pb.Order, channel: str, ending: str) -> pb.Order | None:
        request = pb.PayRequest(
            request_id=uuid.uuid4().hex, terminal_id=terminal, order_id=order.order_id,
            channel=CHANNELS[channel],
            auth_code="" if channel == "cash" else sandbox_code(channel, ending),
            cash_received_fen=order.amount_fen if channel == "cash" else 0,
        )  # fmt: skip
        name = "Pay" if channel == "cash" else pay_name(ending)
        self.paying = order.order_id
        copies = 1
        if random.random() < self.scenario.p_retry:
            copies = random.choice([2, 3])
        if copies > 1 and random.random() < self.scenario.p_concurrent:
            sent = [
                gevent.spawn(self._call, name, self.terminal.Pay, request, 90)
                for _ in range(copies)
            ]
            answers = [copy.value for copy in gevent.joinall(sent)]
        else:
            answers = [self._call(name, self.terminal.Pay, request, 90) for _ in range(copies)]
        answer = next((a for a in answers if a is not None), None)
        if answer is not None:
            answer = self._until_final(answer)
        if answer is None or all(a.state in FINAL for a in answer.attempts):
            self.paying = ""
        return answer

    def _until_final(self, order: pb.Order) -> pb.Order:
        """Pay answered PAYING (the payer is still confirming): follow the order."""
        deadline = time.monotonic() + 180
        while any(a.state not in FINAL for a in order.attempts) and time.monotonic() < deadline:
            gevent.sleep(1.0)
            polled = self._call(
                "GetOrder", self.terminal.GetOrder, pb.GetOrderRequest(order_id=order.order_id)
            )
            order = polled or order
        return order

    def _call(
        self, name: str, method: Callable[..., Any], request: Any, timeout: float = 30
    ) -> Any:
        """One call, timed from sending to its answer, into Locust's statistics."""
        started = time.perf_counter()
        answer, error = None, None
        try:
            answer = method(request, timeout=timeout)
        except (grpc.RpcError, RuntimeError) as failed:
            error = failed
        self.environment.events.request.fire(
            request_type="grpc", name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=answer.ByteSize() if hasattr(answer, "ByteSize") else 0,
            exception=error, context={},
        )  # fmt: skip
        return answer


class ScenarioShape(LoadTestShape):
    """The scenario's stages, their lengths multiplied by --time-scale."""

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options  # type: ignore[union-attr]
        scenario, scale = chosen(options), time_scale(options)
        elapsed = self.get_run_time() / scale
        for stage in scenario.stages:
            if elapsed < stage.until_s:
                users = min(stage.users, len(WINDOWS.free) + self.get_current_user_count())
                return max(users, 1), stage.spawn_rate / scale
        return None


@events.quitting.add_listener
def _verdict(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    scenario = chosen(options)
    SERVER.stop()
    rows = report.measured(environment.stats.entries.values())
    max_failure_ratio = (
        scenario.max_failure_ratio
        if options.max_failure_ratio is None
        else options.max_failure_ratio
    )
    limits = report.limits(scenario.p99_ms, options.max_p99_ms)
    enforced = limits if options.latency == "enforce" else {"*": math.inf}
    verdict = report.verdict(rows, enforced, max_failure_ratio)
    over_limit = report.verdict(rows, limits, math.inf)  # the p99 limits alone
    if options.csv_prefix:  # for `python -m loadtest.consistency --orders` later
        orders = Path(f"{options.csv_prefix}_orders.txt")
        orders.parent.mkdir(parents=True, exist_ok=True)
        orders.write_text("".join(f"{order_id}\n" for order_id in WINDOWS.orders))
    auditor = client.resolve("auditor", data_dir=WINDOWS.data_dir)
    problems = check(
        WINDOWS.target, WINDOWS.orders, WINDOWS.sandboxes, options.settle_seconds, auditor,
        data_dir=WINDOWS.data_dir,
    )  # fmt: skip
    verdict += problems[:20]
    total = environment.stats.total
    print(report.table(rows, SERVER.during))
    print(
        f"windowpay {scenario.name}: {total.num_requests} calls, {total.num_failures} failed; "
        f"consistency: {len(WINDOWS.orders)} orders checked, "
        f"{len(problems)} consistency problems"
    )
    if options.latency == "report":
        print(
            "latency, reported and not judged: "
            + ("; ".join(over_limit) if over_limit else "every p99 within its limit")
        )
    if verdict:
        print("FAILED: " + "; ".join(verdict))
        environment.process_exit_code = 1
    else:
        print("PASSED")
        environment.process_exit_code = 0  # failed calls within the allowed ratio
