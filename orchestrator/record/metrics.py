"""The drainer's metrics: how far PostgreSQL is behind Redis, and how full Redis is."""

from collections.abc import Iterable

from prometheus_client import Counter, Gauge

RECORD_LAG = Gauge(
    "windowpay_record_lag_seconds",
    "Age of the oldest committed change not yet copied to PostgreSQL (0 when none)",
)
RECORD_BACKLOG = Gauge(
    "windowpay_record_backlog",
    "Stream entries (order changes, payment events, receipts) not yet copied to PostgreSQL",
)
RECORD_DRAINED = Counter(
    "windowpay_record_drained_total",
    "Rows written to PostgreSQL by the drainer (replays included)",
    ["kind"],
)
RECORD_ERRORS = Counter(
    "windowpay_record_errors_total",
    "Drainer batches that failed and will be retried, by the system that failed",
    ["system"],
)
RECORD_DATABASE_UP = Gauge(
    "windowpay_record_database_up", "1 when the drainer's last write to PostgreSQL succeeded"
)
RECORD_EXPIRING = Counter(
    "windowpay_record_expiring_total",
    "Orders whose Redis keys were given the retention after being drained final",
)
RECORD_TRIMMED = Counter(
    "windowpay_record_trimmed_total",
    "Stream entries trimmed from Redis once every reader acknowledged them",
    ["stream"],
)
REDIS_USED_MEMORY = Gauge("windowpay_redis_used_memory_bytes", "Redis used_memory")
REDIS_MAXMEMORY = Gauge("windowpay_redis_maxmemory_bytes", "Redis maxmemory (0: no limit)")
LIVE_ORDER_RELOADS = Counter(
    "windowpay_live_order_reloads_total",
    "Open orders Redis had lost, by what the drainer could do: reloaded from the record, "
    "or not in the record",
    ["outcome"],
)
for _outcome in ("reloaded", "not_in_record"):
    LIVE_ORDER_RELOADS.labels(_outcome)  # at 0 from the start, so that increase() sees one

DRAINED_KINDS = ("order", "payment_event", "receipt")
FAILING_SYSTEMS = ("redis", "postgres")


def start_at_zero(trimmed_streams: Iterable[str]) -> None:
    """Create the drainer's labelled series at zero (streams by the kind it trims)."""
    for kind in DRAINED_KINDS:
        RECORD_DRAINED.labels(kind)
    for system in FAILING_SYSTEMS:
        RECORD_ERRORS.labels(system)
    for stream in trimmed_streams:
        RECORD_TRIMMED.labels(stream)
