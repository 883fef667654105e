"""The hash chain of a service point's journal, one chain per local business day.

Every journal entry carries, under "chain", its place in the chain of its service point
and day: the day, its number `n` (1, 2, ...), the hash of the entry before it (`prev`;
GENESIS for the first), the actor incarnation that committed it, and its own `hash`:
SHA-256 over the canonical encoding of the whole entry except that hash (keys sorted,
no spaces, UTF-8). The entry's content (order, amounts, fee lines, states, terminal,
supervisor, time) is therefore covered, and so is the link to the entry before it.

The head of a chain, "n hash" of its last entry, lives in Redis beside the service
point's other keys. The actor links entries in memory when it commits them, and its
commit script refuses the batch unless the stored head is the batch's first `prev`, then
moves the head: no entry is written without its link, and two writers cannot fork a day.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from orchestrator.domain.records import ChainLink, JournalEntry

GENESIS = "0" * 64
"""The `prev` of a day's first entry."""

HEAD_TTL_MS = 45 * 86_400_000
"""How long Redis keeps a day's head: past the day's close and its audit."""


@dataclass(frozen=True, slots=True)
class Head:
    """The last entry of a chain: its number (0 for an empty chain) and hash."""

    n: int = 0
    hash: str = GENESIS

    def encode(self) -> str:
        """As the head key holds it; the empty chain is no key ("")."""
        return f"{self.n} {self.hash}" if self.n else ""

    @classmethod
    def decode(cls, value: bytes | str | None) -> Head:
        if not value:
            return cls()
        text = value.decode() if isinstance(value, bytes) else value
        n, _, digest = text.partition(" ")
        return cls(int(n), digest)


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash is taken over: the entry without chain.hash."""
    chain = dict(entry["chain"])
    chain.pop("hash", None)
    return orjson.dumps({**entry, "chain": chain}, option=orjson.OPT_SORT_KEYS)


def entry_hash(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


def link(
    entry: JournalEntry, sp: str, day: str, head: Head, actor: str
) -> tuple[JournalEntry, Head]:
    """The entry with its link after `head`, and the chain's new head."""
    chain: ChainLink = {"sp": sp, "day": day, "n": head.n + 1, "prev": head.hash, "actor": actor}
    linked: JournalEntry = {**entry, "chain": chain}
    digest = entry_hash(linked)
    chain["hash"] = digest
    return linked, Head(head.n + 1, digest)


@dataclass(frozen=True, slots=True)
class Unlinked:
    """A journal entry staged for a commit, linked into its chain when the batch is
    committed (the actor knows the heads then)."""

    entry: JournalEntry
    day: str  # the local business day of the entry's time, YYYY-MM-DD
