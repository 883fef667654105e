"""Service point ids and order ids: how they are made, how wide they are and how they are
read back.

An order id names its service point before a hyphen, `SP01-K2M9XZ4TBA7QJ5`: everything
that must find an order's actor, its Redis hash tag or its terminal's reach reads the
service point from the id, through `service_point_of`. The service point part is what
the config accepts as a service point id; the random part is 14 base32 letters and
digits when windowpay makes it, and read back as 1 to 32 ASCII letters or digits (the
routing needs only the service point; the tail is not checked more closely than that).

An attempt id (the provider's out_trade_no) starts with the order id's letters and
digits, its last 20 at most: `OrderIds` finds the orders an attempt id, or a refund id
made from one, can belong to.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable, Iterable

from orchestrator.domain.errors import InvalidArgument

SERVICE_POINT_ID = re.compile(r"[A-Z0-9]{1,8}", re.ASCII)
ORDER_TOKEN_LENGTH = 14  # the random part of an order id that windowpay makes
_ENTROPY_BYTES = 10  # 80 bits; base32 of which the first 14 characters (70 bits) are kept
_TOKEN = re.compile(r"[A-Za-z0-9]{1,32}", re.ASCII)
COMPACT_LENGTH = 20  # the order id's letters and digits an attempt id starts with


class MalformedOrderId(InvalidArgument):
    """Text that cannot be an order id; the message says why."""

    def __init__(self, text: str, why: str) -> None:
        super().__init__(f"{text[:80]!r} is not an order id: {why}")


def check_service_point(sp: str) -> str:
    """`sp` itself when it is a well-formed service point id."""
    if not SERVICE_POINT_ID.fullmatch(sp):
        raise InvalidArgument(f"service point id {sp[:80]!r} must be 1-8 capital letters or digits")
    return sp


def new_order_id(sp: str, random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """A fresh order id of service point `sp`."""
    token = base64.b32encode(random_bytes(_ENTROPY_BYTES)).decode()[:ORDER_TOKEN_LENGTH]
    return f"{check_service_point(sp)}-{token}"


def service_point_of(order_id: str) -> str:
    """The service point an order id names; MalformedOrderId when it names none."""
    sp, sep, token = order_id.partition("-")
    if not sep:
        raise MalformedOrderId(order_id, "it has no '-' after the service point")
    if not SERVICE_POINT_ID.fullmatch(sp):
        raise MalformedOrderId(order_id, "it must start with 1-8 capital letters or digits")
    if not _TOKEN.fullmatch(token):
        raise MalformedOrderId(order_id, "after the '-' come 1-32 letters or digits")
    return sp


def compact(order_id: str) -> str:
    """The order id's letters and digits, at most 20 (its random tail): how an attempt id
    made for the order starts."""
    return "".join(c for c in order_id if c.isascii() and c.isalnum())[-COMPACT_LENGTH:]


def order_ids_of(out_no: str, service_points: Iterable[str]) -> list[str]:
    """The order ids (of these service points) that an attempt id, or a refund id made
    from one, can belong to: the inverse of Order.next_attempt_id's compact prefix."""
    return OrderIds(service_points).of(out_no)


class OrderIds:
    """`order_ids_of` for a fixed set of service points, indexed once: a look-up costs
    the same for 20 service points or 2,000 (a notification listener does one per
    notification)."""

    def __init__(self, service_points: Iterable[str]) -> None:
        # width of the compact prefix -> its service-point part -> service points
        self._by_width: dict[int, dict[str, list[str]]] = {}
        token = "0" * ORDER_TOKEN_LENGTH
        for sp in service_points:
            width = min(len(sp) + ORDER_TOKEN_LENGTH, COMPACT_LENGTH)
            part = compact(f"{sp}-{token}")[:-ORDER_TOKEN_LENGTH]
            self._by_width.setdefault(width, {}).setdefault(part, []).append(sp)

    def of(self, out_no: str) -> list[str]:
        found = []
        for width, parts in self._by_width.items():
            head = out_no[:width]
            if len(head) < width or out_no[width : width + 1] != "P":
                continue
            for sp in parts.get(head[:-ORDER_TOKEN_LENGTH], ()):
                order_id = f"{sp}-{head[-ORDER_TOKEN_LENGTH:]}"
                if compact(order_id) == head:
                    found.append(order_id)
        return found
