"""What every windowpay process does to be observed: structured JSON logs, a metrics
endpoint on loopback, and an entry in the scrape-target list in Redis that front doors
serve to Prometheus as HTTP service discovery (so actors are found wherever and
whenever Ray starts them)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

from prometheus_client import start_http_server
from pythonjsonlogger.json import JsonFormatter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orchestrator.store import keys

TARGETS = keys.METRICS_TARGETS
TARGET_TTL_S = 30.0
log = logging.getLogger(__name__)


def configure_logging(level: str = "info") -> None:
    """One JSON object per line; fields passed as `extra` (order_id, request_id,
    attempt_id, ...) become keys. Payer names and auth codes are never logged whole."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))


def mask_payer(name: str) -> str:
    """张三 -> 张*, Zhang San -> Z*******: enough to tell people apart in a log."""
    return name[:1] + "*" * (len(name) - 1) if name else ""


def serve_metrics(port: int = 0) -> str:
    """Expose this process's metrics on loopback; returns host:port."""
    server, _ = start_http_server(port, addr="127.0.0.1")
    return f"127.0.0.1:{server.server_port}"


def _member(job: str, address: str, labels: dict[str, str]) -> str:
    return json.dumps({"job": job, "address": address, "labels": labels}, sort_keys=True)


async def announce(redis: Redis, job: str, address: str, labels: dict[str, str]) -> None:
    """Keep this process in the scrape-target list for as long as it runs."""
    member = _member(job, address, labels)
    while True:
        try:
            now = time.time()
            pipe = redis.pipeline(transaction=False)
            pipe.zadd(TARGETS, {member: now + TARGET_TTL_S})
            pipe.zremrangebyscore(TARGETS, "-inf", now)
            await pipe.execute()
        except (RedisError, OSError) as error:
            log.warning("cannot announce metrics target %s: %s", address, error)
        await asyncio.sleep(TARGET_TTL_S / 3)


async def discovered_targets(redis: Redis) -> list[dict[str, Any]]:
    """The live targets in Prometheus HTTP service-discovery form."""
    members: list[bytes] = await redis.zrangebyscore(TARGETS, time.time(), "+inf")  # type: ignore[assignment]
    groups: dict[str, dict[str, Any]] = {}
    for raw in members:
        target = json.loads(raw)
        labels = {"job": target["job"], **target["labels"]}
        key = json.dumps(labels, sort_keys=True)
        groups.setdefault(key, {"targets": [], "labels": labels})["targets"].append(
            target["address"]
        )
    return sorted(groups.values(), key=lambda g: (g["labels"]["job"], g["targets"]))
