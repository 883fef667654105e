from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from orchestrator.domain.calendar import expiry_after

SHANGHAI = ZoneInfo("Asia/Shanghai")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_an_order_expires_at_the_end_of_its_business_day() -> None:
    created = ms("2026-11-28T09:15:00+08:00")
    assert expiry_after(created, time(17, 30), SHANGHAI) == ms("2026-11-28T17:30:00+08:00")


def test_an_order_created_after_hours_expires_the_next_day() -> None:
    created = ms("2026-11-28T18:00:00+08:00")
    assert expiry_after(created, time(17, 30), SHANGHAI) == ms("2026-11-29T17:30:00+08:00")


def test_the_local_day_is_used_not_utc() -> None:
    created = int(datetime(2026, 11, 28, 23, 0, tzinfo=UTC).timestamp() * 1000)  # 07:00 local
    assert expiry_after(created, time(17, 30), SHANGHAI) == ms("2026-11-29T17:30:00+08:00")
