"""`windowpay audit verify`: recompute a day's journal chains from the record and hold
them against the signed roots, the record's other tables and, where Redis still has
them, the live chain heads and journals.

Per service point the day's journal rows are read in the order the record puts them
(chain_seq) and each is checked:

* ALTERED: its content does not hash to its hash (changed after it was committed), or
  the row's columns say another order, version or link than its entry;
* INSERTED: a row beside the chain (a second entry after the same one that nothing
  follows), or rows past the signed root;
* MISSING: a row links to an entry the record does not have, or the day has fewer
  entries than it was signed with;
* REORDERED: a row links to an entry of the day other than the one standing before it;
* ROOT: the signed root does not verify (the file or its database copy was altered),
  is missing, or the recomputed chain ends elsewhere (the day was rewritten with a new
  chain) or with other totals;
* ALTERED also: a row that is not a readable journal entry with its link;
* RECORD: an orders, order_lines, attempts or refunds row disagrees with what the chain
  says of it (each order against its last entry of any day: orders.version, its state,
  and each attempt's and refund's state), is gone (a refund row deleted), or stands
  beside the chain (an attempts or refunds row no entry names; an order, attempt or
  refund of the day with no journal entry at all);
* ROOT also: the database copy of a root is missing while the file has it;
* REDIS: the live chain head or an order's live journal disagrees with the record.

The record's tables are read together with their archived copies (schema
record_archive), so an archived day verifies and edits there are found. Rows are
streamed from a server-side cursor; memory holds one service point's links
and the facts of the day's orders.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from psycopg import AsyncConnection
from redis.asyncio import Redis

from orchestrator.audit.roots import SignedRoot, Totals, read_file, stored_roots
from orchestrator.domain.ids import service_point_of
from orchestrator.store import chain, keys

MAIN, ARCHIVE = "public", "record_archive"  # the record's schemas (record/partitions.py)


def _both(table: str, columns: str) -> str:
    """A table of the record with its archived rows (an archived day is verified too,
    and the archive is what GetOrder and the recall read for it)."""
    return (
        f"(SELECT {columns} FROM {MAIN}.{table} UNION ALL SELECT {columns} FROM {ARCHIVE}.{table})"
    )


_JOURNAL_COLUMNS = (
    "service_point_id, chain_day, chain_seq, order_id, version, prev_hash, entry_hash, entry"
)
_LINE_COLUMNS = "order_id, line_no, fee_code, quantity, unit_price_fen, amount_fen"
_ATTEMPT_COLUMNS = (
    "attempt_id, channel, state, amount_fen, terminal_id, order_id, provider_trade_no"
)
_REFUND_COLUMNS = (
    "refund_id, amount_fen, state, supervisor_id, terminal_id, order_id, reason, provider_refund_no"
)
_ROWS = f"""
SELECT service_point_id, chain_seq, order_id, version, prev_hash, entry_hash, entry::text
FROM {_both("journal", _JOURNAL_COLUMNS)} AS journal
WHERE chain_day = %(day)s AND (%(sp)s::text IS NULL OR service_point_id = %(sp)s)
ORDER BY service_point_id, chain_seq
"""
_ORDER_ENTRIES = f"""
SELECT order_id, version, entry::text FROM {_both("journal", _JOURNAL_COLUMNS)} AS journal
WHERE order_id = ANY(%s) ORDER BY order_id, version
"""
_ORDERS = f"""
SELECT order_id, version, amount_fen, refunded_fen, state, payer_name
FROM {_both("orders", "order_id, version, amount_fen, refunded_fen, state, payer_name")} AS orders
WHERE order_id = ANY(%s)
"""
_LINES = f"""
SELECT order_id, fee_code, quantity, unit_price_fen, amount_fen
FROM {_both("order_lines", _LINE_COLUMNS)} AS order_lines
WHERE order_id = ANY(%s) ORDER BY order_id, line_no
"""
_ATTEMPTS = f"""
SELECT {_ATTEMPT_COLUMNS}
FROM {_both("attempts", _ATTEMPT_COLUMNS)} AS attempts
WHERE order_id = ANY(%s)
"""
_REFUNDS = f"""
SELECT {_REFUND_COLUMNS}
FROM {_both("refunds", _REFUND_COLUMNS)} AS refunds
WHERE order_id = ANY(%s)
"""
_UNCHAINED = f"""
SELECT o.order_id, o.service_point_id
FROM {_both("orders", "order_id, service_point_id, created_day, paid_day")} o
WHERE (o.created_day = %(day)s OR o.paid_day = %(day)s)
  AND (%(sp)s::text IS NULL OR o.service_point_id = %(sp)s)
  AND NOT EXISTS (SELECT 1 FROM {_both("journal", "order_id")} j WHERE j.order_id = o.order_id)
UNION
SELECT a.order_id, '' FROM {_both("attempts", "order_id, finished_day")} a
WHERE a.finished_day = %(day)s
  AND NOT EXISTS (SELECT 1 FROM {_both("journal", "order_id")} j WHERE j.order_id = a.order_id)
UNION
SELECT r.order_id, '' FROM {_both("refunds", "order_id, finished_day")} r
WHERE r.finished_day = %(day)s
  AND NOT EXISTS (SELECT 1 FROM {_both("journal", "order_id")} j WHERE j.order_id = r.order_id)
ORDER BY 1
"""
CHUNK = 5000  # order ids per cross-checking query


@dataclass(frozen=True, slots=True)
class Finding:
    service_point: str
    kind: str  # ALTERED, INSERTED, MISSING, REORDERED, ROOT, RECORD, REDIS (OPEN: closing)
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.service_point} {self.kind}: {self.where}: {self.what}"


@dataclass(slots=True)
class _Row:
    seq: int
    order_id: str
    version: int
    n: int
    prev: str
    hash: str
    paid_fen: int | None = None  # a payment that succeeded
    refund_fen: int | None = None  # a refund that succeeded

    def name(self) -> str:
        return f"entry #{self.n} (order {self.order_id} version {self.version})"


@dataclass(slots=True)
class _OrderFacts:
    """What the day's chain says of an order, as of its last entry that day."""

    last_version: int = 0
    last_n: int = 0
    state: str = ""
    amount_fen: int = 0
    refunded_fen: int = 0
    payer_sha256: str | None = None  # entries made before it was hashed have none
    lines: list[list[Any]] | None = None
    attempts: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Report:
    day: date
    findings: list[Finding] = field(default_factory=list)
    totals: dict[str, Totals] = field(default_factory=dict)  # per service point
    entries: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.findings


class Verifier:
    def __init__(
        self,
        conn: AsyncConnection[Any],
        *,
        redis: Redis | None = None,
        public_key: Ed25519PublicKey | None = None,
        audit_dir: Path | None = None,
        service_points: Sequence[str] = (),
    ) -> None:
        self._conn = conn
        self._redis = redis
        self._public = public_key
        self._audit_dir = audit_dir
        self._points = list(service_points)  # each expected to have a signed root

    async def verify(
        self, day: date, sp: str | None = None, *, roots: bool = True, closing: bool = False
    ) -> Report:
        """Check the day (one service point, or all). With roots=False (closing a day)
        the signed roots are not asked for; with closing=True a chain whose head Redis
        does not hold is a finding (a head removed or never written cannot vouch that the
        record's chain is whole)."""
        started = time.perf_counter()
        report = Report(day)
        signed = await self._signed_roots(report, day, sp) if roots else {}
        facts: dict[str, _OrderFacts] = {}
        live_entries: dict[tuple[str, int], str] = {}
        seen: set[str] = set()
        for point, rows, hashes in await self._walk(report, day, sp, facts, live_entries):
            seen.add(point)
            if roots:
                self._against_root(report, point, signed.get(point), rows, hashes)
            if self._redis is not None:
                await self._against_redis_head(report, point, day, closing)
        if roots:
            for point, root in sorted(signed.items()):
                if point not in seen and root is not None and root.totals().entries:
                    report.findings.append(
                        Finding(
                            point,
                            "MISSING",
                            "the whole day",
                            f"signed with {root.totals().entries} entries; the record has none",
                        )
                    )
            wanted = [p for p in self._points if sp in (None, p)]
            for point in sorted(set(wanted) | seen):
                if point not in signed:
                    report.findings.append(
                        Finding(
                            point,
                            "ROOT",
                            day.isoformat(),
                            "no signed root: the day was not closed, or its root was removed",
                        )
                    )
        await self._against_tables(report, day, sp, facts)
        if self._redis is not None:
            await self._against_redis_journals(report, day, facts, live_entries)
        report.seconds = time.perf_counter() - started
        return report

    # ---- the chains --------------------------------------------------------------------

    async def _walk(
        self,
        report: Report,
        day: date,
        sp: str | None,
        facts: dict[str, _OrderFacts],
        live_entries: dict[tuple[str, int], str],
    ) -> list[tuple[str, list[_Row], dict[str, int]]]:
        done: list[tuple[str, list[_Row], dict[str, int]]] = []
        current: str | None = None
        rows: list[_Row] = []
        keep_hashes = self._redis is not None
        async with self._conn.transaction():
            cursor = self._conn.cursor(name="audit_verify")
            cursor.itersize = 20_000
            await cursor.execute(_ROWS, {"day": day, "sp": sp})
            async for point, seq, order_id, version, prev, digest, text in cursor:
                if point != current:
                    if current is not None:
                        done.append((current, rows, self._link(report, current, rows)))
                    current, rows = point, []
                report.entries += 1
                entry = _readable(text)
                if entry is None:
                    report.findings.append(
                        Finding(
                            point,
                            "ALTERED",
                            f"row #{seq} (order {order_id} version {version})",
                            "unreadable entry: not a journal entry with its link "
                            f"(it now says {text[:80]})",
                        )
                    )
                    continue
                link = entry["chain"]
                row = _Row(
                    seq,
                    order_id,
                    version,
                    int(link.get("n", 0)),
                    str(link.get("prev")),
                    str(link.get("hash")),
                    *_money(entry),
                )
                if chain.entry_hash(entry) != link.get("hash"):
                    report.findings.append(
                        Finding(
                            point,
                            "ALTERED",
                            row.name(),
                            "its content does not match its "
                            "hash: changed after it was committed" + _plain(entry, text),
                        )
                    )
                else:
                    said = (
                        entry.get("order", {}).get("id"),
                        entry.get("v"),
                        link.get("sp"),
                        link.get("day"),
                        link.get("prev"),
                        link.get("hash"),
                    )
                    stored = (order_id, version, point, day.isoformat(), prev, digest)
                    if said != stored:
                        report.findings.append(
                            Finding(
                                point,
                                "ALTERED",
                                row.name(),
                                f"the row says {_differs(stored, said)}",
                            )
                        )
                rows.append(row)
                _collect(facts, entry, row)
                if keep_hashes:
                    live_entries[(order_id, version)] = row.hash
            await cursor.close()
        if current is not None:
            done.append((current, rows, self._link(report, current, rows)))
        return done

    def _link(self, report: Report, sp: str, rows: list[_Row]) -> dict[str, int]:
        """Walk one service point's rows in the record's order; its hashes -> position.
        Computes the day's totals into report.totals."""
        by_hash = {row.hash: i for i, row in enumerate(rows)}
        children = Counter(row.prev for row in rows)
        followed = {row.prev for row in rows}
        tail, tail_n = chain.GENESIS, 0
        kept: list[_Row] = []
        for row in rows:
            beside = children[row.prev] > 1 and row.hash not in followed
            if beside and any(
                r.prev == row.prev and r.hash in followed for r in rows if r is not row
            ):
                report.findings.append(
                    Finding(
                        sp,
                        "INSERTED",
                        row.name(),
                        "it links after an entry another "
                        "entry already follows, and nothing follows it",
                    )
                )
                continue
            if row.prev != tail:
                if row.prev in by_hash:
                    before = rows[by_hash[row.prev]]
                    report.findings.append(
                        Finding(
                            sp,
                            "REORDERED",
                            row.name(),
                            f"it stands at position {row.seq}, after #{tail_n}, but "
                            f"follows {before.name()} in the chain",
                        )
                    )
                else:
                    gap = max(row.n - tail_n - 1, 1)
                    report.findings.append(
                        Finding(
                            sp,
                            "MISSING",
                            f"{gap} entr{'y' if gap == 1 else 'ies'} before {row.name()}",
                            f"it links to {row.prev[:16]}…, which no entry of the record has",
                        )
                    )
            tail, tail_n = row.hash, row.n
            kept.append(row)
        report.totals[sp] = _totals(kept, tail)
        return by_hash

    def _against_root(
        self,
        report: Report,
        sp: str,
        root: SignedRoot | None,
        rows: list[_Row],
        by_hash: dict[str, int],
    ) -> None:
        if root is None:
            return
        signed, found = root.totals(), report.totals[sp]
        if signed.root != found.root:
            position = by_hash.get(signed.root)
            if position is not None and position < len(rows) - 1:
                report.findings.append(
                    Finding(
                        sp,
                        "INSERTED",
                        rows[position + 1].name(),
                        f"the day was signed ending at #{rows[position].n}; "
                        f"{len(rows) - position - 1} row(s) after it are not in it",
                    )
                )
            elif found.entries < signed.entries and signed.root not in by_hash:
                report.findings.append(
                    Finding(
                        sp,
                        "MISSING",
                        f"entry #{signed.entries}",
                        f"the day was signed with {signed.entries} entries ending "
                        f"{signed.root[:16]}…; the record's chain has {found.entries} "
                        f"ending {found.root[:16]}…",
                    )
                )
            else:
                report.findings.append(
                    Finding(
                        sp,
                        "ROOT",
                        "the signed root",
                        f"the day's chain ends {found.root[:16]}… ({found.entries} "
                        f"entries), the signed root is {signed.root[:16]}… "
                        f"({signed.entries} entries): the day was rewritten",
                    )
                )
        for name in ("payments", "payments_fen", "refunds", "refunds_fen"):
            if getattr(signed, name) != getattr(found, name):
                report.findings.append(
                    Finding(
                        sp,
                        "ROOT",
                        f"{name} of the signed root",
                        f"signed {getattr(signed, name)}, the chain now says "
                        f"{getattr(found, name)}",
                    )
                )

    async def _signed_roots(
        self, report: Report, day: date, sp: str | None
    ) -> dict[str, SignedRoot | None]:
        """The roots to trust, per service point: those whose signature verifies (the
        file's first); None for a service point whose every copy fails."""
        copies: dict[str, list[tuple[str, SignedRoot]]] = {}
        exported = read_file(self._audit_dir, day) if self._audit_dir else None
        for origin, found in (
            ("file", exported or []),
            ("database", await stored_roots(self._conn, day)),
        ):
            for root in found:
                try:
                    point = root.service_point
                except (ValueError, KeyError):
                    point = "?"
                if sp in (None, point):
                    copies.setdefault(point, []).append((origin, root))
        trusted: dict[str, SignedRoot | None] = {}
        for point, versions in sorted(copies.items()):
            origins = {origin for origin, _ in versions}
            if origins == {"file"}:
                report.findings.append(
                    Finding(
                        point,
                        "ROOT",
                        "the signed root (database)",
                        "database copy missing: the file has the day's root, audit_roots "
                        "does not (deleted)",
                    )
                )
            good = None
            for origin, root in versions:
                if self._public is None or not root.verifies(self._public):
                    report.findings.append(
                        Finding(
                            point,
                            "ROOT",
                            f"the signed root ({origin})",
                            "its signature does not verify with the audit public key: "
                            "altered, or not signed by the audit key",
                        )
                    )
                elif _day_of(root) != day.isoformat():
                    report.findings.append(
                        Finding(
                            point,
                            "ROOT",
                            f"the signed root ({origin})",
                            f"it was signed for {_day_of(root)}, not {day}",
                        )
                    )
                elif good is None:
                    good = root
                elif root.statement != good.statement:
                    report.findings.append(
                        Finding(
                            point,
                            "ROOT",
                            f"the signed root ({origin})",
                            "it differs from the file's, though both verify",
                        )
                    )
            trusted[point] = good
        return trusted

    # ---- the record's other tables -------------------------------------------------------

    async def _against_tables(
        self, report: Report, day: date, sp: str | None, facts: Mapping[str, _OrderFacts]
    ) -> None:
        """The tables against the chain. An order is held against its whole journal (every
        day's entries, the record's and the archive's): orders.version must be its last
        version, its state and each attempt's and refund's that of the last entry naming
        it, and every attempts or refunds row of it must be named by an entry. Orders,
        attempts and refunds of the day with no journal entry at all are findings too."""
        ids = sorted(facts)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            async with self._conn.cursor() as cur:
                await cur.execute(_ORDER_ENTRIES, (chunk,))
                whole: dict[str, _OrderFacts] = {}
                for order_id, version, text in await cur.fetchall():
                    entry = _readable(text)
                    if entry is not None and chain.entry_hash(entry) == entry["chain"].get("hash"):
                        _collect(whole, entry, _Row(0, order_id, version, 0, "", ""))
                await cur.execute(_ORDERS, (chunk,))
                orders = {r[0]: r for r in await cur.fetchall()}
                await cur.execute(_LINES, (chunk,))
                lines: dict[str, list[list[Any]]] = {}
                for order_id, *line in await cur.fetchall():
                    lines.setdefault(order_id, []).append(line)
                await cur.execute(_ATTEMPTS, (chunk,))
                attempts = {r[0]: r for r in await cur.fetchall()}
                await cur.execute(_REFUNDS, (chunk,))
                refunds = {r[0]: r for r in await cur.fetchall()}
            for order_id in chunk:
                said = facts[order_id]
                known = whole.get(order_id, said)
                known.last_n = said.last_n
                if known.lines is None:
                    known.lines = said.lines
                _compare_order(
                    report,
                    order_id,
                    known,
                    orders.get(order_id),
                    lines.get(order_id, []),
                    attempts,
                    refunds,
                )
        async with self._conn.cursor() as cur:
            await cur.execute(_UNCHAINED, {"day": day, "sp": sp})
            unchained = await cur.fetchall()
        for order_id, point in unchained:
            point = point or service_point_of(order_id)
            if sp in (None, point):
                report.findings.append(
                    Finding(
                        point,
                        "RECORD",
                        f"order {order_id}",
                        f"its rows of {day} (orders, attempts or refunds) have no journal "
                        "entry at all: inserted beside the chain",
                    )
                )

    # ---- Redis, where it still holds the day ----------------------------------------------

    async def _against_redis_head(self, report: Report, sp: str, day: date, required: bool) -> None:
        assert self._redis is not None
        head = chain.Head.decode(await self._redis.get(keys.chain_head(sp, day.isoformat())))
        found = report.totals[sp]
        if required and not head.n:
            report.findings.append(
                Finding(
                    sp,
                    "REDIS",
                    "the live chain head",
                    f"Redis has no head for the chain the record has (#{found.entries}): "
                    "it cannot vouch that the record's chain is whole",
                )
            )
        if head.n and (head.n, head.hash) != (found.entries, found.root):
            report.findings.append(
                Finding(
                    sp,
                    "REDIS",
                    "the live chain head",
                    f"Redis's head is #{head.n} {head.hash[:16]}…; the record's chain ends "
                    f"#{found.entries} {found.root[:16]}… (altered, or not drained yet)",
                )
            )

    async def _against_redis_journals(
        self,
        report: Report,
        day: date,
        facts: Mapping[str, _OrderFacts],
        recorded: Mapping[tuple[str, int], str],
    ) -> None:
        assert self._redis is not None
        ids = sorted(facts)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            pipe = self._redis.pipeline(transaction=False)
            for order_id in chunk:
                pipe.lrange(keys.journal(service_point_of(order_id), order_id), 0, -1)
            for order_id, live in zip(chunk, await pipe.execute(), strict=True):
                for raw in live:
                    entry = orjson.loads(raw)
                    link = entry.get("chain") or {}
                    if link.get("day") != day.isoformat():
                        continue
                    stored = recorded.get((order_id, entry["v"]))
                    where = f"entry #{link['n']} (order {order_id} version {entry['v']})"
                    if stored is None:
                        report.findings.append(
                            Finding(
                                link["sp"],
                                "MISSING",
                                where,
                                "Redis still holds it; the record does not",
                            )
                        )
                    elif stored != link.get("hash"):
                        report.findings.append(
                            Finding(
                                link["sp"],
                                "REDIS",
                                where,
                                "the record's entry differs from the live one in Redis",
                            )
                        )


# ---- helpers ---------------------------------------------------------------------------


def _readable(text: str) -> dict[str, Any] | None:
    """The entry, or None when it is not a journal entry one can check: not JSON, not an
    object with its link, or with an order, attempt or refund part of the wrong shape."""
    try:
        entry = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("chain"), dict):
        return None
    if not isinstance(entry.get("v"), int) or not isinstance(entry.get("order"), dict):
        return None
    for part in ("attempt", "refund"):
        if part in entry and not (
            isinstance(entry[part], dict)
            and isinstance(entry[part].get("id"), str)
            and isinstance(entry[part].get("amount_fen"), int)
        ):
            return None
    for name in ("amount_fen", "refunded_fen"):
        if not isinstance(entry["order"].get(name, 0), int):
            return None
    return entry


def _collect(facts: dict[str, _OrderFacts], entry: Mapping[str, Any], row: _Row) -> None:
    order = entry.get("order") or {}
    known = facts.setdefault(row.order_id, _OrderFacts())
    if row.version >= known.last_version:
        known.last_version, known.last_n = row.version, row.n
        known.state = str(order.get("state", ""))
        known.amount_fen = int(order.get("amount_fen", 0))
        known.refunded_fen = int(order.get("refunded_fen", 0))
        known.payer_sha256 = order.get("payer_sha256")
    if "lines" in entry:
        known.lines = entry["lines"]
    if "attempt" in entry:
        known.attempts[entry["attempt"]["id"]] = {**entry["attempt"], "n": row.n}
    if "refund" in entry:
        known.refunds[entry["refund"]["id"]] = {**entry["refund"], "n": row.n}


def _money(entry: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """A succeeded payment's or refund's amount, as the entry that made it says."""
    if entry.get("what") == "attempt" and entry.get("attempt_state") == "SUCCEEDED":
        return int(entry["attempt"]["amount_fen"]), None
    refund = entry.get("refund")
    if entry.get("what") == "refund" and refund and refund.get("state") == "SUCCEEDED":
        return None, int(refund["amount_fen"])
    return None, None


def _totals(rows: Sequence[_Row], tail: str) -> Totals:
    """The day's totals over the rows of its chain: payments and refunds that succeeded
    (refunds of late successes included: money that went back)."""
    paid = [r.paid_fen for r in rows if r.paid_fen is not None]
    refunded = [r.refund_fen for r in rows if r.refund_fen is not None]
    return Totals(len(rows), tail, len(paid), sum(paid), len(refunded), sum(refunded))


def _compare_order(
    report: Report,
    order_id: str,
    said: _OrderFacts,
    row: tuple[Any, ...] | None,
    lines: list[list[Any]],
    attempts: Mapping[str, tuple[Any, ...]],
    refunds: Mapping[str, tuple[Any, ...]],
) -> None:
    sp = service_point_of(order_id)
    where = f"order {order_id} (entry #{said.last_n})"

    def found(what: str) -> None:
        report.findings.append(Finding(sp, "RECORD", where, what))

    if row is None:
        found("the chain has it; the orders table does not")
        return
    _, version, amount, refunded, state, payer = row
    if said.payer_sha256 is not None and (
        hashlib.sha256(str(payer).encode()).hexdigest() != said.payer_sha256
    ):
        found("orders.payer_name is not the payer the chain hashed")
    if version != said.last_version:
        found(
            f"orders.version {version} has no journal entry; the order's last entry is "
            f"version {said.last_version}"
        )
    latest = True  # said is as of the order's last entry, whatever its day
    if amount != said.amount_fen:
        found(f"orders.amount_fen is {amount}; the chain says {said.amount_fen}")
    if latest and refunded != said.refunded_fen:
        found(f"orders.refunded_fen is {refunded}; the chain says {said.refunded_fen}")
    if latest and state != said.state:
        found(f"orders.state is {state}; the chain says {said.state}")
    if said.lines is not None and [list(line) for line in lines] != said.lines:
        found(f"order_lines are {lines}; the chain says {said.lines}")
    for attempt_id, a in said.attempts.items():
        stored = attempts.get(attempt_id)
        if stored is None:
            found(f"attempt {attempt_id} (entry #{a['n']}) has no attempts row")
            continue
        _, channel, a_state, a_amount, terminal, _, trade_no = stored
        if (
            "provider_trade_no" in a
            and a["state"] == a_state == "SUCCEEDED"
            and trade_no != a["provider_trade_no"]
        ):
            found(
                f"attempt {attempt_id}: attempts.provider_trade_no is {trade_no!r}; the "
                f"chain says {a['provider_trade_no']!r}"
            )
        if (a_amount, channel, terminal) != (a["amount_fen"], a["channel"], a["terminal"]):
            found(
                f"attempt {attempt_id}: the row says {a_amount} fen, {channel}, {terminal}; "
                f"the chain says {a['amount_fen']} fen, {a['channel']}, {a['terminal']}"
            )
        elif latest and a_state != a["state"]:
            found(f"attempt {attempt_id}: the row is {a_state}; the chain says {a['state']}")
    for attempt_id, stored in attempts.items():
        if stored[5] == order_id and attempt_id not in said.attempts:
            found(
                f"attempt {attempt_id} ({stored[3]} fen, {stored[2]}) has no journal entry: "
                "inserted beside the chain"
            )
    for refund_id, stored in refunds.items():
        if stored[5] == order_id and refund_id not in said.refunds:
            found(
                f"refund {refund_id} ({stored[1]} fen, {stored[2]}) has no journal entry: "
                "inserted beside the chain"
            )
    for refund_id, r in said.refunds.items():
        stored = refunds.get(refund_id)
        if stored is None:
            found(
                f"refund {refund_id} of {r['amount_fen']} fen (entry #{r['n']}) has no "
                "refunds row: deleted"
            )
            continue
        _, r_amount, r_state, supervisor, terminal, _, reason, refund_no = stored
        if "reason" in r and reason != r["reason"]:
            found(
                f"refund {refund_id}: refunds.reason is {reason!r}; the chain says {r['reason']!r}"
            )
        if (
            "provider_refund_no" in r
            and r["state"] == r_state == "SUCCEEDED"
            and refund_no != r["provider_refund_no"]
        ):
            found(
                f"refund {refund_id}: refunds.provider_refund_no is {refund_no!r}; the chain "
                f"says {r['provider_refund_no']!r}"
            )
        if (r_amount, supervisor, terminal) != (r["amount_fen"], r["supervisor"], r["terminal"]):
            found(
                f"refund {refund_id}: the row says {r_amount} fen by {supervisor} at "
                f"{terminal}; the chain says {r['amount_fen']} fen by {r['supervisor']} at "
                f"{r['terminal']}"
            )
        elif latest and r_state != r["state"]:
            found(f"refund {refund_id}: the row is {r_state}; the chain says {r['state']}")


def _plain(entry: Mapping[str, Any], text: str) -> str:
    """What the altered entry says now, for the person reading the finding."""
    order = entry.get("order") or {}
    facts = [f"{entry.get('what')}", f"order {order.get('amount_fen')} fen"]
    for part in ("attempt", "refund"):
        if part in entry:
            facts.append(f"{part} {entry[part].get('amount_fen')} fen {entry[part].get('state')}")
    return f" (it now says: {', '.join(facts)})"


def _differs(stored: tuple[Any, ...], said: tuple[Any, ...]) -> str:
    names = ("order", "version", "service point", "day", "prev", "hash")
    parts = [
        f"{name} {s!s:.16}, its entry {e!s:.16}"
        for name, s, e in zip(names, stored, said, strict=True)
        if s != e
    ]
    return "; ".join(parts)


def _day_of(root: SignedRoot) -> str:
    return str(root.fields.get("day"))
