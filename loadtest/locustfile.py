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
--data-dir (run.json). A run exits non-zero when its failure ratio or p99 passes the
scenario's thresholds, or when the consistency check afterwards finds an order charged
twice or an attempt not final.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

import gevent  # noqa: E402
from locust import LoadTestShape, User, events, tag, task  # noqa: E402
from locust.env import Environment  # noqa: E402

from loadtest.consistency import check  # noqa: E402
from loadtest.scenarios import FEE_MIX, Scenario, registry  # noqa: E402
from orchestrator.config import load_config  # noqa: E402
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb  # noqa: E402
from orchestrator.generated.windowpay.v1 import windowpay_pb2_grpc as pb_grpc  # noqa: E402
from orchestrator.pos import sandbox_code  # noqa: E402

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
        "--time-compression", type=float, default=1.0,
        help="multiply every stage's length (0.05 for a smoke run)",
    )  # fmt: skip
    parser.add_argument(
        "--max-failure-ratio", type=float, default=None,
        help="fail the run above this failure ratio (default: the scenario's)",
    )  # fmt: skip
    parser.add_argument(
        "--max-p99-ms", type=float, default=None,
        help="fail the run above this p99 over all calls (default: the scenario's)",
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


class Windows:
    """The deployment's windows, each handed to one user at a time."""

    def __init__(self) -> None:
        self.target = ""
        self.sandboxes: dict[str, str] = {}
        self.free: list[tuple[str, str]] = []
        self.orders: list[str] = []
        self._lock = threading.Lock()

    def load(self, data_dir: Path) -> None:
        run = json.loads((data_dir / "run.json").read_text())
        config = load_config(Path(run["config"]) if run["config"] else None)
        self.target = run["grpc"]
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


@events.init.add_listener
def _load(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is not None:
        WINDOWS.load(Path(options.data_dir))


class Reporting(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Every call, with its time and outcome, into Locust's statistics."""

    def __init__(self, environment: Environment) -> None:
        self._events = environment.events

    def _fire(self, method: str, started: float, error: Exception | None, size: int) -> None:
        self._events.request.fire(
            request_type="grpc", name=method.rsplit("/", 1)[-1],
            response_time=(time.perf_counter() - started) * 1000, response_length=size,
            exception=error, context={},
        )  # fmt: skip

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        started = time.perf_counter()
        outcome = continuation(details, request)
        error = outcome.exception()
        self._fire(details.method, started, error, 0 if error else outcome.result().ByteSize())
        return outcome

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        started = time.perf_counter()
        stream = continuation(details, request)
        self._fire(details.method, started, None, 0)
        return stream


def _pick(weights: dict[str, float]) -> str:
    return random.choices(list(weights), weights=list(weights.values()))[0]


class WindowUser(User):
    """One window: its terminal and the business system behind it."""

    def on_start(self) -> None:
        self.scenario = chosen(self.environment.parsed_options)
        self.window = WINDOWS.take()
        if self.window is None:
            self.stop()
            return
        channel = grpc.intercept_channel(
            grpc.insecure_channel(WINDOWS.target), Reporting(self.environment)
        )
        self.business = pb_grpc.BusinessGatewayStub(channel)
        self.terminal = pb_grpc.TerminalStub(channel)

    def on_stop(self) -> None:
        if getattr(self, "window", None) is not None:
            WINDOWS.give(self.window)

    def wait_time(self) -> float:
        low, high = self.scenario.think_s
        return random.uniform(low, high)

    @tag(*SCENARIOS)
    @task
    def a_case(self) -> None:
        window, terminal = self.window  # type: ignore[misc]
        lines, _ = random.choices(FEE_MIX, weights=[w for _, w in FEE_MIX])[0]
        try:
            order = self.business.CreateOrder(
                pb.CreateOrderRequest(
                    request_id=uuid.uuid4().hex, business_no=f"L{uuid.uuid4().hex[:16]}",
                    window_id=window, payer_name=random.choice(["张三", "李四", "王五"]),
                    lines=[pb.OrderLine(fee_code=c, quantity=q) for c, q in lines],
                ),
                timeout=30,
            )  # fmt: skip
        except grpc.RpcError:
            return
        WINDOWS.orders.append(order.order_id)
        if random.random() < self.scenario.p_watch:
            self._watch(terminal, order.order_id)
        if random.random() < self.scenario.p_cancel:
            cancel = pb.CancelOrderRequest(
                request_id=uuid.uuid4().hex, order_id=order.order_id, reason="withdrawn"
            )
            self._call(self.business.CancelOrder, cancel)
            return
        channel = _pick(self.scenario.channels)
        paid = self._pay(terminal, order, channel, _pick(self.scenario.endings))
        if paid is not None and paid.state != pb.PAID:  # declined, reversed: pay in cash
            self._pay(terminal, order, "cash", "")

    def _watch(self, terminal: str, order_id: str) -> None:
        stream = self.terminal.WatchWindow(pb.WatchWindowRequest(terminal_id=terminal), timeout=10)
        try:
            for shown in stream:
                if shown.order_id == order_id:
                    break
        except grpc.RpcError:
            pass
        finally:
            stream.cancel()

    def _pay(self, terminal: str, order: pb.Order, channel: str, ending: str) -> pb.Order | None:
        request = pb.PayRequest(
            request_id=uuid.uuid4().hex, terminal_id=terminal, order_id=order.order_id,
            channel=CHANNELS[channel],
            auth_code="" if channel == "cash" else sandbox_code(channel, ending),
            cash_received_fen=order.amount_fen if channel == "cash" else 0,
        )  # fmt: skip
        copies = 1
        if random.random() < self.scenario.p_retry:
            copies = random.choice([2, 3])
        if copies > 1 and random.random() < self.scenario.p_concurrent:
            sent = [gevent.spawn(self._call, self.terminal.Pay, request, 90) for _ in range(copies)]
            answers = [copy.value for copy in gevent.joinall(sent)]
        else:
            answers = [self._call(self.terminal.Pay, request, 90) for _ in range(copies)]
        answer = next((a for a in answers if a is not None), None)
        if answer is not None:
            answer = self._until_final(answer)
        return answer

    def _until_final(self, order: pb.Order) -> pb.Order:
        """Pay answered PAYING (the payer is still confirming): follow the order."""
        deadline = time.monotonic() + 180
        while any(a.state not in FINAL for a in order.attempts) and time.monotonic() < deadline:
            gevent.sleep(1.0)
            polled = self._call(self.terminal.GetOrder, pb.GetOrderRequest(order_id=order.order_id))
            order = polled or order
        return order

    def _call(self, method: Any, request: Any, timeout: float = 30) -> Any:
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError:
            return None  # reported to Locust by the interceptor


class ScenarioShape(LoadTestShape):
    """The scenario's stages, compressed in time if asked."""

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options  # type: ignore[union-attr]
        scenario = chosen(options)
        elapsed = self.get_run_time() / options.time_compression
        for stage in scenario.stages:
            if elapsed < stage.until_s:
                users = min(stage.users, len(WINDOWS.free) + self.get_current_user_count())
                return max(users, 1), stage.spawn_rate / options.time_compression
        return None


def _given(option: float | None, default: float) -> float:
    return default if option is None else option


@events.quitting.add_listener
def _verdict(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    scenario = chosen(options)
    total = environment.stats.total
    failure_ratio = total.fail_ratio
    p99 = total.get_response_time_percentile(0.99) or 0
    max_failure_ratio = _given(options.max_failure_ratio, scenario.max_failure_ratio)
    max_p99_ms = _given(options.max_p99_ms, scenario.max_p99_ms)
    verdict = []
    if failure_ratio > max_failure_ratio:
        verdict.append(f"failure ratio {failure_ratio:.3f} > {max_failure_ratio}")
    if p99 > max_p99_ms:
        verdict.append(f"p99 {p99:.0f} ms > {max_p99_ms:g} ms")
    problems = check(
        WINDOWS.target, WINDOWS.orders, WINDOWS.sandboxes, options.settle_seconds,
        data_dir=Path(options.data_dir),
    )  # fmt: skip
    verdict += problems[:20]
    print(
        f"windowpay {scenario.name}: {total.num_requests} calls, {total.num_failures} failed, "
        f"p99 {p99:.0f} ms; {len(WINDOWS.orders)} orders checked, "
        f"{len(problems)} consistency problems"
    )
    if verdict:
        print("FAILED: " + "; ".join(verdict))
        environment.process_exit_code = 1
