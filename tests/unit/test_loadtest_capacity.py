"""The capacity model's projection (loadtest/capacity.py): plain arithmetic on measured
figures, checked against values worked out by hand."""

from __future__ import annotations

from loadtest.capacity import project

FIGURES = {
    "cpu_ms_per_payment": {"front door": 1.2, "redis": 0.4, "postgresql": 0.2},
    "windowpay_cpu_ms_per_payment": 3.0,
    "redis": {
        "commands_per_payment": 57.0,
        "aof_bytes_per_payment": 4096.0,
        "memory_bytes_per_payment_first_day": 7_500.0,
    },
    "postgresql": {
        "commits_per_payment": 0.05,
        "wal_bytes_per_payment": 10_737.0,
        "database_bytes_per_payment": 3_900.0,
    },
}


def test_a_province_at_its_peak() -> None:
    assert project(FIGURES, 1_000_000, 100) == {
        "per_day": 1_000_000,
        "peak_per_s": 100,
        # 100/s x 3 ms = 0.3 core, planned half busy: 0.6
        "windowpay_cores_at_peak": 0.6,
        "redis_commands_per_s_at_peak": 5700,
        "redis_core_share_at_peak": 0.04,
        "redis_shards_for_cpu": 1,
        # 1,000,000 x 4 KiB = 3,906 MiB
        "redis_aof_mb_per_day": 3906,
        # 1,000,000 x 7,500 B = 6.98 GiB
        "redis_memory_gb_first_day": 7.0,
        "postgresql_commits_per_s_at_peak": 5.0,
        # 1,000,000 x 10,737 B = 10.0 GiB
        "postgresql_wal_gb_per_day": 10.0,
        # 365 x 1,000,000 x 3,900 B = 1,326 GiB
        "postgresql_gb_per_year": 1326,
    }


def test_redis_is_sharded_once_one_core_would_be_more_than_half_busy() -> None:
    busy = {**FIGURES, "cpu_ms_per_payment": {"redis": 0.4}}
    # 3,000/s x 0.4 ms = 1.2 cores of Redis: three shards at most half busy each
    assert project(busy, 10_000_000, 3000)["redis_shards_for_cpu"] == 3
