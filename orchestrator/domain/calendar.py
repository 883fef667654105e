"""Business-day arithmetic: when an unpaid order expires."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo


def local_day(now_ms: int, zone: tzinfo) -> datetime:
    return datetime.fromtimestamp(now_ms / 1000, tz=UTC).astimezone(zone)


def expiry_after(now_ms: int, day_end: time, zone: tzinfo) -> int:
    """The first end of a business day after `now_ms` (milliseconds since the epoch)."""
    local = local_day(now_ms, zone)
    end = datetime.combine(local.date(), day_end, tzinfo=zone)
    if end <= local:
        end = datetime.combine(local.date() + timedelta(days=1), day_end, tzinfo=zone)
    return int(end.timestamp() * 1000)
