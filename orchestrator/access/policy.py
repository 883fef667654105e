"""The authorization table: for each gRPC method, the roles that may call it and the
scope checks on the request (and, for reads found by a secondary key, on the answer).

A check returns None when the call is in scope, or the reason it is not. The table is
data: what a role may do is read here, not scattered over the servicers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.domain import ids
from orchestrator.domain.principals import Principal, Role

Check = Callable[[Principal, Any, "Scope"], str | None]

_V1 = "windowpay.v1"
TERMINAL = f"/{_V1}.Terminal/"
BUSINESS = f"/{_V1}.BusinessGateway/"
RECEIPTS = f"/{_V1}.Receipts/"
BACKOFFICE = f"/{_V1}.BackOffice/"
HEALTH = "/grpc.health.v1.Health/"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/"

EVERYONE = frozenset(Role)
READERS = frozenset({Role.BACKOFFICE, Role.AUDITOR})
NAMES_MASKED = frozenset({Role.AUDITOR})  # read payer names masked, as in the console


def masks_payer_names(principal: Principal) -> bool:
    return principal.role in NAMES_MASKED


@dataclass(frozen=True)
class Scope:
    """What the checks need to know about the deployment."""

    # WatchPayments subscriber id -> the business principal it belongs to
    subscribers: Mapping[str, str] = field(default_factory=dict)
    # service point -> its city office today (empty: a deployment without offices)
    offices: Mapping[str, str] = field(default_factory=dict)


def _own_terminal(principal: Principal, request: Any, scope: Scope) -> str | None:
    if principal.role is Role.TERMINAL and request.terminal_id != principal.name:
        return f"terminal_id {request.terminal_id[:32]!r} is not the caller"
    return None


def _own_window(principal: Principal, request: Any, scope: Scope) -> str | None:
    reason = _own_terminal(principal, request, scope)
    if reason is None and request.window_id and request.window_id != principal.window:
        return f"window {request.window_id[:32]!r} is not the terminal's window"
    return reason


def _own_point(principal: Principal, order_id: str) -> str | None:
    if (
        principal.role is Role.TERMINAL
        and order_id
        and not _of_point(order_id, principal.service_point)
    ):
        return f"order {order_id[:40]!r} is not of service point {principal.service_point}"
    return None


def _of_point(order_id: str, sp: str) -> bool:
    try:
        return ids.service_point_of(order_id) == sp
    except ids.MalformedOrderId:
        return False


def _office_of(scope: Scope, order_id: str, stamped: str = "") -> str:
    """The office an order belongs to: the one stamped on it, else (an order made
    before orders carried one, or a receipt) its service point's office today."""
    if stamped:
        return stamped
    try:
        return scope.offices.get(ids.service_point_of(order_id), "")
    except ids.MalformedOrderId:
        return ""


def _own_office(principal: Principal, order_id: str, scope: Scope, stamped: str = "") -> str | None:
    """A backoffice or auditor principal of one office reaches only that office's orders."""
    if principal.office and _office_of(scope, order_id, stamped) != principal.office:
        return f"order {order_id[:40]!r} is not of office {principal.office}"
    return None


def _settles_own_office(principal: Principal, request: Any, scope: Scope) -> str | None:
    """One office's principal asks for the settlement of one of its service points: the
    whole deployment's would show the other offices' money."""
    if principal.office and scope.offices.get(request.service_point_id) != principal.office:
        return f"{principal.name} settles only service points of office {principal.office}"
    return None


def _late_success_in_reach(principal: Principal, request: Any, scope: Scope) -> str | None:
    return _own_office(principal, request.order_id, scope)


def _refund_in_reach(principal: Principal, request: Any, scope: Scope) -> str | None:
    """A terminal refunds as itself and only orders of its own service point: checked
    before the supervisor's PIN, so that no terminal can guess or lock the PIN of
    another point's supervisor."""
    return _own_terminal(principal, request, scope) or _own_point(principal, request.order_id)


def _order_in_reach(principal: Principal, request: Any, scope: Scope) -> str | None:
    if request.WhichOneof("key") == "order_id":
        return _own_point(principal, request.order_id)
    return None  # found by another key: the answer is checked (_answer_in_reach)


def _answer_in_reach(principal: Principal, answer: Any, scope: Scope) -> str | None:
    """Orders carry their service point and office; receipts their order id. Checked on
    the answer whatever the key (the order id names only the service point, whose office
    may have changed since the order was made): out of reach, it is answered as not
    found."""
    order_id = getattr(answer, "order_id", "")
    stamped = getattr(answer, "office_id", "")
    return _own_point(principal, order_id) or _own_office(principal, order_id, scope, stamped)


def _subscriber(principal: Principal, request: Any, scope: Scope) -> str | None:
    """A subscriber id is read, acknowledged and held only by the principal the config
    binds it to."""
    if scope.subscribers.get(request.subscriber_id) != principal.name:
        return f"subscriber_id {request.subscriber_id[:40]!r} is not one the config gives it"
    return None


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role]
    request: Check | None = None  # scope of the request, before anything runs
    answer: Check | None = None  # scope of the answer, for reads by a secondary key


TABLE: Mapping[str, Rule] = {
    TERMINAL + "Pay": Rule(frozenset({Role.TERMINAL}), _own_terminal),
    TERMINAL + "Refund": Rule(frozenset({Role.TERMINAL}), _refund_in_reach),
    TERMINAL + "WatchWindow": Rule(frozenset({Role.TERMINAL}), _own_window),
    TERMINAL + "GetOrder": Rule(READERS | {Role.TERMINAL}, _order_in_reach, _answer_in_reach),
    BUSINESS + "CreateOrder": Rule(frozenset({Role.BUSINESS})),
    BUSINESS + "CancelOrder": Rule(frozenset({Role.BUSINESS})),
    BUSINESS + "GetOrder": Rule(READERS | {Role.BUSINESS}, answer=_answer_in_reach),
    BUSINESS + "WatchPayments": Rule(frozenset({Role.BUSINESS}), _subscriber),
    BUSINESS + "AckPayments": Rule(frozenset({Role.BUSINESS}), _subscriber),
    RECEIPTS + "GetReceipt": Rule(
        READERS | {Role.TERMINAL, Role.BUSINESS}, _order_in_reach, _answer_in_reach
    ),
    BACKOFFICE + "GetSettlement": Rule(READERS, _settles_own_office),
    # Only for attempts that reconciliation found kept by the provider: the servicer
    # checks the finding reconciliation recorded.
    BACKOFFICE + "SettleLateSuccess": Rule(frozenset({Role.BACKOFFICE}), _late_success_in_reach),
    HEALTH + "Check": Rule(EVERYONE),
    HEALTH + "Watch": Rule(EVERYONE),
    REFLECTION + "ServerReflectionInfo": Rule(frozenset({Role.BACKOFFICE, Role.MONITOR})),
}


def denial(rule: Rule | None, principal: Principal, request: Any, scope: Scope) -> str | None:
    """Why `principal` may not make this call, or None when it may."""
    if rule is None or principal.role not in rule.roles:
        return "not allowed for its role"
    if rule.request is not None:
        return rule.request(principal, request, scope)
    return None
