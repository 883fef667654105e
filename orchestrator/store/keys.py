"""Redis key layout. Keys of one service point share the hash tag {SP} so that one
Redis Cluster slot holds them and one script can commit them atomically; the global
claim keys (request ids, business cases, auth codes) each live in their own slot."""

from __future__ import annotations

PREFIX = "wp"


def order(sp: str, order_id: str) -> str:
    return f"{PREFIX}:{{{sp}}}:o:{order_id}"


def journal(sp: str, order_id: str) -> str:
    return f"{PREFIX}:{{{sp}}}:j:{order_id}"


def open_orders(sp: str) -> str:
    """Hash order id -> window id of every order that still needs the actor."""
    return f"{PREFIX}:{{{sp}}}:open"


def missing_orders(sp: str) -> str:
    """Set of the order ids the open set names whose snapshot Redis no longer holds, as
    the actor found them: the drainer reloads each from the record and removes it."""
    return f"{PREFIX}:{{{sp}}}:missing"


def epoch(sp: str) -> str:
    """Incremented by each actor incarnation that takes the service point over."""
    return f"{PREFIX}:{{{sp}}}:epoch"


def response(sp: str, request_id: str) -> str:
    return f"{PREFIX}:{{{sp}}}:r:{request_id}"


def events(sp: str) -> str:
    """Pub/sub channel carrying every committed order snapshot of the service point."""
    return f"{PREFIX}:{{{sp}}}:ev"


EVENTS_PATTERN = f"{PREFIX}:{{*}}:ev"


def outbox(sp: str) -> str:
    """Stream of the service point's payment events for the business system (and the
    receipt issuer), each reader a consumer group with its own durable position."""
    return f"{PREFIX}:{{{sp}}}:outbox"


def changes(sp: str) -> str:
    """Stream of (order id, version) for every committed order change, in commit order:
    what the record drainer copies to PostgreSQL. Trimmed once drained."""
    return f"{PREFIX}:{{{sp}}}:changes"


def day(sp: str, yyyymmdd: str) -> str:
    """Set of the order ids that changed on that local business day."""
    return f"{PREFIX}:{{{sp}}}:day:{yyyymmdd}"


def chain_head(sp: str, day: str) -> str:
    """The head ("n hash") of the service point's journal chain for a business day
    (YYYY-MM-DD): moved only by the actor's commit script (store/chain.py)."""
    return f"{PREFIX}:{{{sp}}}:chain:{day}"


def lease(subscriber: str) -> str:
    """Held by the one front door streaming payment events to this subscriber."""
    return f"{PREFIX}:lease:{subscriber}"


def request_claim(request_id: str) -> str:
    return f"{PREFIX}:idem:{request_id}"


def business_case(business_no: str) -> str:
    return f"{PREFIX}:biz:{business_no}"


RECORDED = " recorded"
"""Suffix the drainer adds to a business case's order id once that (paid) order has left
Redis for the record: the case is taken, though its order is no longer here."""


def auth_code(digest: str) -> str:
    return f"{PREFIX}:code:{digest}"


def late_success(attempt_id: str) -> str:
    """The provider's trade number of an attempt reconciliation found kept by the
    provider although windowpay ended it unpaid: SettleLateSuccess may refund only these."""
    return f"{PREFIX}:latesuccess:{attempt_id}"


# ---- supervisor PINs: one hash tag, so that one script counts and locks atomically ----


def pin_failures(supervisor_id: str) -> str:
    """PIN attempts for a supervisor within the counting window (shared by front doors)."""
    return f"{PREFIX}:{{pins}}:fail:{supervisor_id}"


def pin_wrong(supervisor_id: str) -> str:
    """Wrong PINs for a supervisor within the counting window: what locks."""
    return f"{PREFIX}:{{pins}}:wrong:{supervisor_id}"


def pin_lock(supervisor_id: str) -> str:
    """Present while the supervisor is locked out after too many wrong PINs."""
    return f"{PREFIX}:{{pins}}:lock:{supervisor_id}"


def pin_terminal(terminal_id: str) -> str:
    """PIN attempts made at a terminal within the counting window, whoever they name."""
    return f"{PREFIX}:{{pins}}:term:{terminal_id}"


# ---- receipts: one hash tag, so that numbering and binding to an order are atomic ----


def receipt_sequence(code: str) -> str:
    """The last receipt number allocated under a receipt code."""
    return f"{PREFIX}:{{receipts}}:seq:{code}"


def receipt_of_order(order_id: str) -> str:
    """The receipt number an order was given (an order never gets two)."""
    return f"{PREFIX}:{{receipts}}:order:{order_id}"


def receipt(code: str, number: str) -> str:
    return f"{PREFIX}:{{receipts}}:r:{code}:{number}"


RECEIPT_CHANGES = f"{PREFIX}:{{receipts}}:changes"
"""Stream of (receipt code, number) for every receipt written, in the same transaction
as the write: what the record drainer copies to PostgreSQL."""


# ---- operations ------------------------------------------------------------------------

METRICS_TARGETS = f"{PREFIX}:metrics:targets"
"""Sorted set of the processes' metrics endpoints, scored by when their entry expires."""

RECONCILIATION_SUMMARY = f"{PREFIX}:recon:last"
"""The summary of the last reconciliation run, turned into gauges by the front doors."""

AUDIT_VERIFIED = f"{PREFIX}:audit:verified"
"""Hash day (YYYY-MM-DD) -> the outcome of the last `windowpay audit verify` of that day,
turned into gauges by the front doors (WindowpayAuditChainBroken)."""
