"""Every Prometheus metric windowpay exports, in one place.

Each process (front door, service-point actor, receipt issuer) exports the ones it
updates. Names follow Prometheus conventions: base units (seconds, fen), `_total` for
counters, and bounded labels only: service point, window-free, channel or provider,
operation, outcome, gRPC method and code. Never an order id or a payer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

from prometheus_client import Counter, Gauge, Histogram

from orchestrator.domain.commands import Command
from orchestrator.domain.principals import Role
from orchestrator.domain.states import AttemptState, Channel, RefundState

LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
PAYMENT = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 300)
SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

# ---- front door --------------------------------------------------------------------

GRPC_REQUESTS = Counter(
    "windowpay_grpc_requests_total",
    "gRPC calls handled, by service, method and status code.",
    ["service", "method", "code"],
)
GRPC_DURATION = Histogram(
    "windowpay_grpc_request_duration_seconds",
    "Time to answer a gRPC call (whole stream for streaming calls).",
    ["service", "method"],
    buckets=LATENCY,
)
ACTOR_BATCH_SIZE = Histogram(
    "windowpay_actor_batch_size",
    "Commands per Ray call from a front door to a service-point actor.",
    buckets=SIZES,
)
ACTOR_BATCHES = Counter(
    "windowpay_actor_batches_total",
    "Command batches sent to service-point actors, by path: over the actor's direct "
    "channel, or as a Ray task (the fallback while the channel is down or elsewhere).",
    ["path"],
)
ACTOR_CALL_DURATION = Histogram(
    "windowpay_actor_call_duration_seconds",
    "Time for one batched Ray call to a service-point actor to answer.",
    buckets=LATENCY,
)
ACTOR_QUEUE_DEPTH = Gauge(
    "windowpay_actor_queue_depth",
    "Commands waiting in a front door for their actor (its mailbox, seen from here).",
    ["actor"],
)
SERVICE_POINT_EPOCH = Gauge(
    "windowpay_service_point_epoch",
    "How many actor incarnations took the service point over (grows on each restart).",
    ["service_point"],
)
RECONCILIATION_DIFFERENCES = Gauge(
    "windowpay_reconciliation_differences",
    "Differences found by the last reconciliation run, by provider and kind.",
    ["provider", "kind"],
)
RECONCILIATION_UNEXPLAINED = Gauge(
    "windowpay_reconciliation_unexplained",
    "Differences of the last reconciliation run that nobody explained or healed yet.",
)
RECONCILIATION_MATCHED_FEN = Gauge(
    "windowpay_reconciliation_matched_fen",
    "Money matched between windowpay and the provider's bill in the last run.",
    ["provider"],
)
RECONCILIATION_LAST_RUN = Gauge(
    "windowpay_reconciliation_last_run_timestamp_seconds",
    "When the last reconciliation run finished.",
)

# ---- service-point actors ------------------------------------------------------------

ATTEMPTS = Counter(
    "windowpay_attempts_total",
    "Payment attempts that reached a final state, by channel, outcome and service point.",
    ["channel", "outcome", "service_point"],
)
ATTEMPT_DURATION = Histogram(
    "windowpay_attempt_duration_seconds",
    "Time from the scan of the payer's code to the attempt's final state.",
    ["channel", "outcome"],
    buckets=PAYMENT,
)
PAYMENTS = Counter(
    "windowpay_payments_total",
    "Orders paid, by channel and service point.",
    ["channel", "service_point"],
)
PAID_FEN = Counter(
    "windowpay_paid_fen_total",
    "Money taken, in fen, by channel and service point.",
    ["channel", "service_point"],
)
REVERSALS = Counter(
    "windowpay_reversals_total",
    "Reversals (撤销, cancel, 冲正) that ended, by provider and outcome (done, abandoned).",
    ["provider", "outcome"],
)
LATE_SUCCESSES = Counter(
    "windowpay_late_successes_total",
    "Payments found at the provider after windowpay ended them unpaid (refunded).",
    ["provider"],
)
ORDER_RECALLS = Counter(
    "windowpay_order_recalls_total",
    "Orders that had left Redis, asked for by a refund or a late success's refund, by "
    "outcome: recalled (put back from the record by this actor), already_back (another "
    "reload had put it back), not_in_record, record_unavailable, record_mismatch (the "
    "record's snapshot disagrees with the order's hashed journal: refused).",
    ["outcome"],
)
RECALL_OUTCOMES = (
    "recalled",
    "already_back",
    "not_in_record",
    "record_unavailable",
    "record_mismatch",
)
REFUNDS = Counter(
    "windowpay_refunds_total",
    "Refunds that ended, by channel, outcome and whether automatic (a late success).",
    ["channel", "outcome", "automatic"],
)
IDEMPOTENCY = Counter(
    "windowpay_idempotency_total",
    "Requests whose id was seen before: replayed, or refused for other parameters.",
    ["command", "result"],
)
COMMIT_BATCH_SIZE = Histogram(
    "windowpay_commit_batch_size",
    "Callers served by one group commit to Redis.",
    buckets=SIZES,
)
REDIS_DURATION = Histogram(
    "windowpay_redis_duration_seconds",
    "Redis round trips, by operation (read, commit, restore: an order back from the record).",
    ["operation"],
    buckets=LATENCY,
)
REDIS_ERRORS = Counter(
    "windowpay_redis_errors_total",
    "Redis round trips that failed, by operation.",
    ["operation"],
)
PROVIDER_DURATION = Histogram(
    "windowpay_provider_request_duration_seconds",
    "Calls to a payment provider, by provider and operation (pay, query, reverse, ...).",
    ["provider", "operation"],
    buckets=LATENCY,
)
PROVIDER_ERRORS = Counter(
    "windowpay_provider_errors_total",
    "Provider calls without a usable answer, by provider, operation and kind "
    "(unavailable, unknown, rejected, timeout).",
    ["provider", "operation", "kind"],
)
ANSWER_MISMATCHES = Counter(
    "windowpay_provider_answer_mismatches_total",
    "Verified provider answers ignored because they name another trade, refund, amount "
    "or merchant than the request did, by provider and operation.",
    ["provider", "operation"],
)
REFUNDS_OVERDUE = Gauge(
    "windowpay_refunds_overdue",
    "Refunds still pending longer than refund_pending_alert_s, by provider: each waits "
    "for the provider's final word, and a person should look.",
    ["provider"],
)
ACTOR_SUBMITS = Counter(
    "windowpay_actor_commands_total",
    "Commands received by service-point actors, by command.",
    ["command"],
)

# The label values known at start: every series they make is created at zero, so that
# rates, sums and alerts see it before its first event (Prometheus's advice).
CHANNELS = tuple(channel.value for channel in Channel)
PROVIDERS = tuple(channel.value for channel in Channel if channel is not Channel.CASH)
OPERATIONS = (
    "pay", "query", "reverse", "create_qr", "close", "refund", "refund_query", "bill",
)  # fmt: skip
ERROR_KINDS = ("unavailable", "unknown", "rejected", "timeout", "mismatch")
COMMANDS = tuple(command.__name__ for command in get_args(Command))
# How an attempt ends at its window (a late success is refunded later, on its own).
ATTEMPT_OUTCOMES = tuple(s.value for s in (AttemptState.SUCCEEDED, AttemptState.FAILED,
                                           AttemptState.REVERSED))  # fmt: skip
REFUND_OUTCOMES = (RefundState.SUCCEEDED.value, RefundState.FAILED.value)
REDIS_OPERATIONS = ("read", "commit", "restore")
ACTOR_BATCH_PATHS = ("direct", "ray")


def start_at_zero(service_points: Sequence[str] = ()) -> None:
    """Create the labelled series a service-point process may update, at zero, for the
    service points it serves."""
    for operation in REDIS_OPERATIONS:
        REDIS_ERRORS.labels(operation)
        REDIS_DURATION.labels(operation)
    for outcome in RECALL_OUTCOMES:
        ORDER_RECALLS.labels(outcome)
    for provider in PROVIDERS:
        LATE_SUCCESSES.labels(provider)
        REFUNDS_OVERDUE.labels(provider)
        for outcome in ("done", "abandoned"):
            REVERSALS.labels(provider, outcome)
        for operation in OPERATIONS:
            ANSWER_MISMATCHES.labels(provider, operation)
            PROVIDER_DURATION.labels(provider, operation)
            for kind in ERROR_KINDS:
                PROVIDER_ERRORS.labels(provider, operation, kind)
    for command in COMMANDS:
        ACTOR_SUBMITS.labels(command)
        for result in ("replayed", "conflict"):
            IDEMPOTENCY.labels(command, result)
    for channel in CHANNELS:
        for outcome in ATTEMPT_OUTCOMES:
            ATTEMPT_DURATION.labels(channel, outcome)
            for sp in service_points:
                ATTEMPTS.labels(channel, outcome, sp)
        for sp in service_points:
            PAYMENTS.labels(channel, sp)
            PAID_FEN.labels(channel, sp)
        for outcome in REFUND_OUTCOMES:
            for automatic in ("true", "false"):
                REFUNDS.labels(channel, outcome, automatic)


# ---- notifications (front door's listener) --------------------------------------------

NOTIFICATIONS = Counter(
    "windowpay_notifications_total",
    "Provider notifications received, by channel and outcome: applied, duplicate, "
    "unknown, ignored (answered received); refused, mismatch, deferred (answered as a "
    "failure: the provider sends it again).",
    ["channel", "outcome"],
)
NOTIFICATION_OUTCOMES = (
    "applied", "duplicate", "unknown", "ignored", "refused", "probe", "mismatch", "deferred",
)  # fmt: skip


# ---- access (front door) -------------------------------------------------------------

ACCESS_DENIED = Counter(
    "windowpay_access_denied_total",
    "Calls refused by the authorization table (PERMISSION_DENIED), by role and method.",
    ["role", "method"],
)
ACCESS_LIMITED = Counter(
    "windowpay_access_limited_total",
    "Calls refused by a limit (RESOURCE_EXHAUSTED): rate, calls in flight, streams, queue.",
    ["role", "limit"],
)
ACCESS_REFUSED = Counter(
    "windowpay_access_refused_total",
    "Calls refused before any role applies: revoked certificate, unknown principal.",
    ["reason"],
)
SUPERVISOR_PINS = Counter(
    "windowpay_supervisor_pin_checks_total",
    "Supervisor PIN checks at refunds, by outcome (ok, wrong, locked, terminal_limit, "
    "unknown, elsewhere, unavailable).",
    ["outcome"],
)
CRL_REFUSED = Counter(
    "windowpay_access_crl_refused_total",
    "Revocation lists refused (the last good one stays in force), by reason: missing, "
    "unreadable, foreign (not signed by the CA).",
    ["reason"],
)
CRL_LOADED = Gauge(
    "windowpay_access_crl_loaded_timestamp_seconds",
    "When the revocation list in force was taken (Unix time).",
)

# (the access checks' own words for a limit and a refusal: orchestrator/access/)
ACCESS_LIMITS = ("rate", "calls", "streams", "slow_reader")
ACCESS_REFUSALS = ("no_certificate", "revoked", "unbound", "unknown_principal")
CRL_REFUSALS = ("missing", "unreadable", "foreign", "rollback", "dropped")


def access_at_zero(methods: Sequence[str], pin_outcomes: Sequence[str]) -> None:
    """Create the access series of a front door serving `methods`, at zero."""
    for reason in ACCESS_REFUSALS:
        ACCESS_REFUSED.labels(reason)
    for reason in CRL_REFUSALS:
        CRL_REFUSED.labels(reason)
    for outcome in pin_outcomes:
        SUPERVISOR_PINS.labels(outcome)
    for role in Role:
        for limit in ACCESS_LIMITS:
            ACCESS_LIMITED.labels(role.value, limit)
        for method in methods:
            ACCESS_DENIED.labels(role.value, method)


AUDIT_DAYS_BROKEN = Gauge(
    "windowpay_audit_chain_broken",
    "Days whose last `windowpay audit verify` found the record altered (any finding).",
)
AUDIT_DAY_NOT_CLOSED = Gauge(
    "windowpay_audit_day_not_closed",
    "1 while the drainer's closer cannot sign the day due for closing (NotClosable).",
)
AUDIT_LAST_VERIFIED = Gauge(
    "windowpay_audit_last_verified_timestamp_seconds",
    "When `windowpay audit verify` last finished.",
)
