"""Every labelled windowpay series whose label values are known at start exists, at zero,
once its process has started (issue 28): what each process calls at its start, called
in a fresh interpreter (so that no other test's traffic made a series first). The served
check against the dashboard and the alert rules is tests/faults/test_series_at_start.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Kept up to date at scrape time from what the process sees, not known at start.
AT_SCRAPE = {
    "windowpay_actor_queue_depth",  # one per actor lane of this front door
    "windowpay_service_point_epoch",  # one per service point taken over (from Redis)
}
STARTS = """
import json
from prometheus_client import REGISTRY
from orchestrator.domain.states import Channel
from orchestrator.frontdoor.telemetry import MetricsInterceptor, start_at_zero as front_door
from orchestrator.metrics import start_at_zero as service_point
from orchestrator.notify.listener import NotifyListener
from orchestrator.record.metrics import start_at_zero as drainer

service_point(["SP01", "SP02"])  # a service-point actor
front_door()  # the front door: its metrics endpoint, its interceptor, its listener
MetricsInterceptor()
NotifyListener().attach({channel: None for channel in Channel}, {})
drainer(["changes", "outbox"])  # the drainer
families = {f.name: len(f.samples) for f in REGISTRY.collect() if f.name.startswith("windowpay_")}
print(json.dumps(families))
"""


def test_every_labelled_series_exists_once_its_process_started() -> None:
    done = subprocess.run(
        [sys.executable, "-c", STARTS], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    families: dict[str, int] = json.loads(done.stdout)
    assert len(families) > 30
    assert sorted(name for name, samples in families.items() if not samples) == sorted(AT_SCRAPE)
