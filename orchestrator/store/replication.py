"""Acknowledged means replicated: a pipeline of keyed commands that, when the store is
told to (`Replication.replicas` > 0), ends on every node it wrote to with `WAIT replicas
timeout`, and fails with `NotReplicated` if fewer replicas confirmed in time.

WAIT waits for the replication offset of the *connection it is sent on*; so it must
follow the writes on the same connection. On a single server a pipeline is one
connection. On a Redis Cluster the commands are grouped by the node that serves their
key's slot and each group, with its WAIT last, is sent on one connection of that node.
A group whose node answers MOVED or ASK (its slots moved: a failover) or cannot be
reached (its connection error is raised, as a single server's is) fails the whole
pipeline, never retried elsewhere behind the WAIT's back; the client re-reads the slots
before its next call.

Redis 7.0 has no WAITAOF: every node runs `appendfsync always`, so the master's own
copy is on its disk before it answers, and WAIT adds the replica's copy in memory (and
on the replica's disk at its next fsync)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)

from orchestrator.store.connect import is_cluster


class NotReplicated(RedisError):
    """Written on the master but not confirmed by enough replicas in time: the change is
    not acknowledged (the caller answers UNAVAILABLE; the terminal sends it again)."""


@dataclass(frozen=True)
class Replication:
    """How many replicas must hold a write before it is acknowledged (0: do not wait),
    and how long to wait for them."""

    replicas: int = 0
    timeout_ms: int = 2000


NONE = Replication()


def replication_for(
    redis: Redis, replicas: int | None = None, timeout_ms: int = 2000
) -> Replication:
    """The `redis_replicas_ack` setting; unset: one replica on a Redis Cluster (each
    master has one), none on a single server (today's deployment has no replica)."""
    if replicas is None:
        replicas = 1 if is_cluster(redis) else 0
    return Replication(replicas, timeout_ms) if replicas else NONE


class KeyedPipeline:
    """Commands, each with the key that routes it, sent together by `execute`."""

    def __init__(self, redis: Redis, replication: Replication = NONE) -> None:
        self._redis = redis
        self._replication = replication
        self._commands: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __len__(self) -> int:
        return len(self._commands)

    def add(self, key: str, *args: Any, **options: Any) -> None:
        """Queue `args` (the command and its arguments), routed by `key`."""
        self._commands.append((key, args, options))

    async def execute(self) -> list[Any]:
        """Each command's result or the exception it answered, in order; raises
        NotReplicated if a WAIT fell short, or what a node that failed raised."""
        if not self._commands:
            return []
        if is_cluster(self._redis):
            return await self._on_cluster(cast(RedisCluster, self._redis))
        pipe = self._redis.pipeline(transaction=False)
        for _, args, options in self._commands:
            pipe.execute_command(*args, **options)
        replicas = self._replication.replicas
        if replicas:
            pipe.execute_command("WAIT", replicas, self._replication.timeout_ms)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        if replicas:
            self._check_wait(results.pop(), "the server")
        return results

    async def _on_cluster(self, cluster: RedisCluster) -> list[Any]:
        await cluster.initialize()  # reads the slots the first time (and after a failover)
        groups: dict[str, tuple[ClusterNode, list[PipelineCommand]]] = {}
        commands = []
        for position, (key, args, options) in enumerate(self._commands):
            try:
                node = cluster.get_node_from_key(key)
            except RedisClusterException as error:  # not a RedisError: callers catch those
                await cluster.aclose()
                raise ClusterDownError(f"no node serves the slot of {key}: {error}") from error
            if node is None:  # only asked for a replica can there be none
                raise ClusterDownError(f"no node serves the slot of {key}")
            command = PipelineCommand(position, *args, **options)
            groups.setdefault(node.name, (node, []))[1].append(command)
            commands.append(command)
        replicas = self._replication.replicas
        waits = {}
        if replicas:
            for name, (_, group) in groups.items():
                waits[name] = PipelineCommand(-1, "WAIT", replicas, self._replication.timeout_ms)
                group.append(waits[name])
        sent = await asyncio.gather(
            *(node.execute_pipeline(group) for node, group in groups.values()),
            return_exceptions=True,
        )
        failed = [error for error in sent if isinstance(error, BaseException)]
        failed += [c.result for group in groups.values() for c in group[1] if _lost(c.result)]
        if failed:
            await cluster.aclose()  # the next call reads the slots again
            raise failed[0]
        for name, wait in waits.items():
            self._check_wait(wait.result, name)
        return [command.result for command in commands]

    def _check_wait(self, acknowledged: Any, where: str) -> None:
        if isinstance(acknowledged, Exception):
            raise acknowledged
        if int(acknowledged) < self._replication.replicas:
            raise NotReplicated(
                f"{acknowledged} of {self._replication.replicas} replicas of {where} "
                f"confirmed within {self._replication.timeout_ms} ms"
            )


def _lost(result: Any) -> bool:
    """The node could not be reached, or no longer serves the slot (a failover moved
    it): not an answer to the command (a script's refusal is one)."""
    if isinstance(result, MovedError | AskError | TryAgainError | ClusterDownError):
        return True
    return isinstance(result, RedisError) and not isinstance(result, ResponseError)
