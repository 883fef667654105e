"""Reading several Redis streams through one consumer group: what was delivered to us
but not acknowledged comes first (after a crash), then new entries. Stream ids and
trimming bounds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from orchestrator.store.stream_groups import read_group


@dataclass(frozen=True, slots=True)
class Entry:
    stream: str
    entry_id: str
    fields: dict[bytes, bytes]


def parse_id(entry_id: str | bytes) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def format_id(ms: int, seq: int) -> str:
    return f"{ms}-{seq}"


class GroupReader:
    def __init__(self, redis: Redis, streams: Sequence[str], group: str, consumer: str) -> None:
        self._redis = redis
        self.streams = list(streams)
        self.group = group
        self._consumer = consumer
        self._after: dict[str, str] = {}
        self._pending = True

    async def join(self) -> None:
        """Create the group on every stream (from its beginning) unless it exists, and
        start again from our pending entries."""
        pipe = self._redis.pipeline(transaction=False)
        for stream in self.streams:
            pipe.xgroup_create(stream, self.group, id="0", mkstream=True)
        for result in await pipe.execute(raise_on_error=False):
            if isinstance(result, ResponseError) and "BUSYGROUP" not in str(result):
                raise result
        self._after = dict.fromkeys(self.streams, "0")
        self._pending = True

    async def read(self, count: int, block_ms: int | None) -> list[Entry]:
        if self._pending:
            page = await self._read(self._after, count, None)
            for entry in page:
                self._after[entry.stream] = entry.entry_id
            if page:
                return page
            self._pending = False
        return await self._read(dict.fromkeys(self.streams, ">"), count, block_ms)

    async def ack(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        by_stream: dict[str, list[str]] = {}
        for entry in entries:
            by_stream.setdefault(entry.stream, []).append(entry.entry_id)
        pipe = self._redis.pipeline(transaction=False)
        for stream, ids in by_stream.items():
            pipe.xack(stream, self.group, *ids)
        await pipe.execute()

    async def _read(self, after: dict[str, str], count: int, block: int | None) -> list[Entry]:
        streams: dict[Any, Any] = dict(after)
        answer = await read_group(
            self._redis, self.group, self._consumer, streams, count=count, block_ms=block
        )
        page = []
        for stream, entries in answer or []:
            name = stream.decode() if isinstance(stream, bytes) else stream
            for entry_id, fields in entries:
                # An entry trimmed while pending comes back without fields.
                page.append(Entry(name, entry_id.decode(), fields or {}))
        return page


async def unread_bounds(redis: Redis, streams: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per stream and group: the oldest entry the group has not acknowledged (pending or
    not yet delivered), as (ms, seq), or None when it has acknowledged everything; and
    how many entries that is."""
    pipe = redis.pipeline(transaction=False)
    for stream in streams:
        pipe.xinfo_groups(stream)
    infos = await pipe.execute(raise_on_error=False)
    bounds: dict[str, dict[str, Any]] = {}
    pipe = redis.pipeline(transaction=False)
    asked: list[tuple[str, str, str, int]] = []
    for stream, groups in zip(streams, infos, strict=True):
        if isinstance(groups, Exception):
            continue
        bounds[stream] = {}
        for group in groups:
            name = group["name"].decode() if isinstance(group["name"], bytes) else group["name"]
            last = group["last-delivered-id"]
            last = last.decode() if isinstance(last, bytes) else last
            behind = int(group.get("pending") or 0) + int(group.get("lag") or 0)
            bounds[stream][name] = {"oldest": None, "behind": behind, "last": last}
            if group.get("pending"):
                pipe.xpending(stream, name)
                asked.append((stream, name, "pending", 0))
            pipe.xrange(stream, min=f"({last}", max="+", count=1)
            asked.append((stream, name, "undelivered", 0))
    if asked:
        for (stream, name, what, _), answer in zip(
            asked, await pipe.execute(raise_on_error=False), strict=True
        ):
            if isinstance(answer, Exception):
                continue
            found = None
            if what == "pending" and answer and answer.get("min"):
                found = parse_id(answer["min"])
            elif what == "undelivered" and answer:
                found = parse_id(answer[0][0])
            if found is not None:
                current = bounds[stream][name]["oldest"]
                bounds[stream][name]["oldest"] = found if current is None else min(current, found)
    return bounds
