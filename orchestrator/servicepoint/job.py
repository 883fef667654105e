"""One command of a batch on its way through prepare, read, decide and commit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.domain.catalog import PricedLine
from orchestrator.domain.commands import Command, Result
from orchestrator.domain.errors import DomainError
from orchestrator.store.port import Read


@dataclass(slots=True)
class Job:
    """One command of a batch on its way through prepare, read, decide, commit."""

    command: Command
    fingerprint: str
    sp: str
    future: asyncio.Future[Result]
    lines: tuple[PricedLine, ...] = ()
    catalog_version: str = ""
    candidate_id: str = ""
    order_id: str = ""  # the order a command names ("" for a create)
    recalls: bool = False  # recalled from the record if the store no longer holds it
    code_key: str = ""
    claim: Read | None = None
    response: Read | None = None
    business: Read | None = None
    code: Read | None = None
    order: Read | None = None
    refused: DomainError | None = None  # found before the decision (the record away)
    result: Result | None = None
    start_driver: tuple[str, str] | None = None  # (order id, attempt id)
    start_refund: tuple[str, str] | None = None  # (order id, refund id)
    after: list[Callable[[], None]] = field(default_factory=list)  # once durable


def value_of(read: Read | None) -> bytes | None:
    """What a read of the batch found; None if it found nothing or was not made."""
    return None if read is None else read.value


def claimed_now(read: Read | None) -> bool:
    """Whether this command took the claim (the key was free)."""
    return read is not None and read.value is None
