"""Locust smoke runs: every scenario, compressed to seconds, against the e2e deployment.

Each run must end with exit status 0, statistics in its CSV files and Locust's HTML
report beside them, the summary table with the front door's view, and the consistency
check finding no order charged twice and no attempt left unfinished. Latency is
reported, not judged (`--latency report`): how fast this shared machine answers is the
benchmark's business (loadtest/bench.py holds the p99 limits and the agreement between
Locust and the front door as its targets). Then the checks themselves are shown to fail:
a threshold passed, attempts still under way when the check runs, a double charge
planted in a sandbox ledger, and calls queued inside Locust against a real
`windowpay serve`. These tests run last (see conftest): they leave the day busy."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import tomli_w

from loadtest import agreement, serverview
from loadtest.agreement import Agreement, locust_command
from loadtest.consistency import check
from loadtest.scenarios import registry
from orchestrator.access import client
from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.record.embedded import EmbeddedPostgres
from orchestrator.runfile import RunInfo
from tests.e2e.conftest import Deployed
from tests.support import eventually, small_config_data

pytestmark = pytest.mark.load

ROOT = Path(__file__).resolve().parent.parent.parent
SMOKE_S = 6.0  # each scenario's whole shape, compressed to about this long


async def locust(data_dir: Path, csv_prefix: Path, *options: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *locust_command(data_dir, csv_prefix, "-t", "60s", "--settle-seconds", "30", *options),
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=150)
    assert process.returncode is not None
    return process.returncode, out.decode()


def stats(csv_prefix: Path) -> dict[str, dict[str, str]]:
    with open(f"{csv_prefix}_stats.csv", newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


@pytest.mark.parametrize("name", sorted(registry()))
async def test_a_compressed_scenario_passes_its_failure_ratio_and_the_consistency_check(
    deployed: Deployed, tmp_path: Path, name: str
) -> None:
    scenario = registry()[name]
    scale = SMOKE_S / scenario.stages[-1].until_s
    code, out = await locust(
        deployed.data_dir, tmp_path / name, "--scenario", name, "--time-scale", f"{scale:.4f}",
        "--latency", "report",
    )  # fmt: skip
    assert code == 0, out
    assert f"windowpay {name}:" in out and " 0 consistency problems" in out, out
    assert "PASSED" in out and "FAILED" not in out, out
    print(next(line for line in out.splitlines() if line.startswith("latency, reported")))
    rows = stats(tmp_path / name)
    assert int(rows["CreateOrder"]["Request Count"]) > 0
    assert any(n.startswith("Pay") and int(r["Request Count"]) for n, r in rows.items())
    total = rows["Aggregated"]
    ratio = int(total["Failure Count"]) / int(total["Request Count"])
    assert ratio <= scenario.max_failure_ratio
    assert "<html" in (tmp_path / f"{name}.html").read_text()[:2000].lower()
    ordered = (tmp_path / f"{name}_orders.txt").read_text().split()
    assert f"consistency: {len(ordered)} orders checked" in out, out  # every order, once
    assert len(set(ordered)) == len(ordered) > 0
    create = next(line for line in out.splitlines() if line.startswith("CreateOrder "))
    server = create.split("|")[1].split()  # the front door's own count of the run's calls
    assert server[0] == "CreateOrder" and int(server[1]) >= int(
        rows["CreateOrder"]["Request Count"]
    )


async def test_a_scenario_selected_by_its_tag_fails_when_its_p99_passes_the_threshold(
    deployed: Deployed, tmp_path: Path
) -> None:
    code, out = await locust(
        deployed.data_dir, tmp_path / "tagged", "--tags", "retry_storm",
        "--time-scale", "0.03", "--max-p99-ms", "0.001",
    )  # fmt: skip
    assert code == 1, out
    assert "windowpay retry_storm:" in out and "FAILED: " in out, out
    assert "CreateOrder p99 " in out.split("FAILED: ")[1], out


async def test_the_old_time_flag_still_works_with_a_warning_and_a_held_pay_has_its_own_limit(
    deployed: Deployed, tmp_path: Path
) -> None:
    """slow_payers with --time-compression (deprecated), the limit of payers who confirm
    set below the seconds they take, and every other name's set out of reach (an hour):
    only the one limit fails the run."""
    code, out = await locust(
        deployed.data_dir, tmp_path / "old", "--scenario", "slow_payers",
        "--time-compression", "0.03", "--max-p99-ms", "Pay (payer confirming)=1",
        "--max-p99-ms", "3600000", "--max-p99-ms", "Pay (payer never confirms)=3600000",
    )  # fmt: skip
    assert "--time-compression is deprecated" in out, out
    assert code == 1, out
    failed = out.split("FAILED: ")[1].splitlines()[0]
    assert [f.split(" p99 ")[0] for f in failed.split("; ")] == ["Pay (payer confirming)"], out


async def test_several_locust_processes_are_refused_before_any_is_forked(tmp_path: Path) -> None:
    code, out = await locust(tmp_path, tmp_path / "forked", "--processes", "2")
    assert code == 1 and "use one Locust process" in out, out


async def test_a_run_fails_when_its_attempts_are_not_final_at_the_check(
    deployed: Deployed, tmp_path: Path
) -> None:
    """Payers who never confirm are still paying when the run stops; a check that may
    not wait for them finds their attempts unfinished, and fails the run even when its
    latency is only reported. Given time, they end (and the windows are free again for
    the next test)."""
    code, out = await locust(
        deployed.data_dir, tmp_path / "unsettled", "--scenario", "slow_payers",
        "--time-scale", "0.02", "--settle-seconds", "0", "--latency", "report",
    )  # fmt: skip
    assert code == 1, out
    assert "attempts not final" in out.split("FAILED: ")[1], out
    orders = (tmp_path / "unsettled_orders.txt").read_text().split()
    address = deployed.server.address
    auditor = client.of_pki(deployed.pki_dir, "auditor")
    assert await asyncio.to_thread(check, address, orders, None, 90.0, auditor) == []


async def test_the_consistency_check_finds_a_double_charge_and_an_unfinished_attempt(
    deployed: Deployed,
) -> None:
    providers = {c.value: u for c, u in deployed.sandboxes.base_urls.items()}
    order = await deployed.create(deployed.window(), "DOC-DLIC")
    declined = await deployed.terminal_of_order(order).Pay(
        deployed.pay_request(order, Channel.WECHAT, "3333")
    )
    paid = await deployed.terminal_of_order(order).Pay(deployed.pay_request(order, Channel.CASH))
    assert paid.state == pb.PAID
    address = deployed.server.address
    auditor = client.of_pki(deployed.pki_dir, "auditor")
    assert (
        await asyncio.to_thread(check, address, [order.order_id], providers, 120.0, auditor) == []
    )

    wechat = deployed.sandboxes.bank(Channel.WECHAT)
    attempt = declined.attempts[0].attempt_id
    wechat.alter(attempt, paid=True)  # the provider took the money after all
    try:
        problems = await asyncio.to_thread(
            check, address, [order.order_id], providers, 120.0, auditor
        )
    finally:
        wechat.alter(attempt, paid=False)
    assert problems == [
        f"{order.order_id}: charged {2 * order.amount_fen} fen for an order of {order.amount_fen}"
    ]

    waiting = await deployed.create(deployed.window(), "DOC-DLIC")
    request = deployed.pay_request(waiting, Channel.WECHAT, "2222")  # never confirms
    pending = deployed.terminal_for(request.terminal_id).Pay(request, timeout=30)
    await eventually(lambda: deployed.get(waiting.order_id), lambda o: o.state == pb.PAYING)
    problems = await asyncio.to_thread(check, address, [waiting.order_id], providers, 0.0, auditor)
    assert len(problems) == 1 and "attempts not final" in problems[0]
    assert (await pending).attempts[0].state == pb.REVERSED


SERVE_ATTEMPTS = 3  # Ray's node start can time out when the shared machine is swamped


async def serve(
    data_dir: Path, config: Path, attempt: int, database_url: str
) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "RAY_ADDRESS")}
    # The record in the session's PostgreSQL: an embedded one cannot live in pytest's
    # private temporary folders when the tests run as root (it runs as user postgres).
    env["DATABASE_URL"] = database_url
    log = os.open(data_dir / f"serve-{attempt}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        return await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("windowpay")), "serve", "--config", str(config),
            "--data-dir", str(data_dir), "--log-level", "warning",
            cwd=data_dir, env=env, stdout=log, stderr=log,
        )  # fmt: skip
    finally:
        os.close(log)


async def ready(process: asyncio.subprocess.Process, data_dir: Path) -> RunInfo | None:
    """run.json once `serve` wrote it; None if the process ended first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 240
    while process.returncode is None and loop.time() < deadline:
        run = RunInfo.read(data_dir)
        if run is not None:
            return run
        await asyncio.sleep(0.5)
    assert process.returncode is not None, "windowpay serve did not start within 240 s"
    return None


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), timeout=60)
        except TimeoutError:
            process.kill()
            await process.wait()


@pytest.fixture(scope="module")
async def served(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: EmbeddedPostgres
) -> AsyncIterator[RunInfo]:
    """A real `windowpay serve`, as `make run` starts it: its own data dir, embedded Redis,
    local Ray, sandboxes, free ports. Small, and on the suite's time scale. A start that
    fails (Ray's node start timing out on a swamped machine) is tried again."""
    data_dir = tmp_path_factory.mktemp("served")
    config = data_dir / "windowpay.toml"
    data = small_config_data(prefix="S", service_points=3, windows=8, pay_hold_s=30)
    config.write_text(tomli_w.dumps(data))
    database_url = postgres_server.create_database(f"served_{uuid.uuid4().hex[:8]}")
    for attempt in range(1, SERVE_ATTEMPTS + 1):
        process = await serve(data_dir, config, attempt, database_url)
        try:
            run = await ready(process, data_dir)
            if run is not None:
                yield run
                return
        finally:
            await stop(process)
    logs = [(data_dir / f"serve-{n}.log").read_text()[-2000:] for n in range(1, attempt + 1)]
    raise AssertionError(f"windowpay serve failed {SERVE_ATTEMPTS} times:\n" + "\n".join(logs))


async def compare(served: RunInfo, prefix: Path, *options: str) -> tuple[list[Agreement], str]:
    """Run Locust with `options` against the served deployment, scraping the front door's
    histogram just before and after; returns how Locust's CreateOrder and Pay figures
    compare with the front door's, and Locust's output."""
    address = serverview.metrics_address(served.redis_url, served.grpc)
    assert address is not None
    data_dir = Path(served.config or "").parent
    before = await asyncio.to_thread(serverview.scrape, address)
    code, out = await locust(data_dir, prefix, "--json-file", str(prefix), *options)
    after = await asyncio.to_thread(serverview.scrape, address)
    assert code in (0, 1), out
    entries = json.loads(prefix.with_suffix(".json").read_text())
    found = agreement.compare(serverview.window(before, after), entries)
    for method in found:
        print(method)
    return found, out


@pytest.mark.timeout(600)
async def test_locust_and_the_front_door_count_the_same_run(
    served: RunInfo, tmp_path: Path
) -> None:
    """steady_day against a served deployment: the front door answered every call Locust
    made, enough of each method for the benchmark's comparison, and the run is clean.
    How close the two latencies are is printed here and judged by the benchmark."""
    found, out = await compare(
        served, tmp_path / "agree",
        "--scenario", "steady_day", "--time-scale", "0.05", "--latency", "report",
    )  # fmt: skip
    assert "PASSED" in out, out
    rows = stats(tmp_path / "agree")
    for method in found:
        sent = sum(
            int(r["Request Count"]) for n, r in rows.items() if n.split(" (", 1)[0] == method.method
        )
        assert method.calls >= max(sent, agreement.MIN_CALLS), (method, sent)


@pytest.mark.timeout(600)
async def test_calls_queued_inside_locust_are_seen_to_disagree_with_the_front_door(
    served: RunInfo, tmp_path: Path
) -> None:
    """The benchmark's comparison can fail: the fault these load tests had, planted.
    grpc's calls given two threads to wait on (one of them grpc's own), so that payers
    who take their time hold them and the other windows' calls queue inside Locust, for
    seconds. The comparison sees Locust's CreateOrder far slower than the front door's."""
    found, out = await compare(
        served, tmp_path / "starved",
        "--scenario", "slow_payers", "--time-scale", "0.15", "--grpc-threads", "2",
    )  # fmt: skip
    problems = [p for method in found for p in method.problems]
    assert any(p.startswith("p99 CreateOrder") for p in problems), (problems, out)
