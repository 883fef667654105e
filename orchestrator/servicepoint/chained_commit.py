"""How a service-point core's group commit reaches the store: the batch's journal
entries are linked into their day's chains (store/chain.py, `WriteBatch.link`) after
the heads kept in memory, read from the store the first time a day is written, then
committed, fenced by the actor's epochs. The commit script moves each chain's head only
if it is still the one linked after (docs/RECORD.md)."""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.store.chain import Head
from orchestrator.store.port import StorePort
from orchestrator.store.write_batch import WriteBatch


class ChainedCommit:
    def __init__(self, store: StorePort, epochs: Mapping[str, int]) -> None:
        self._store = store
        self._epochs = epochs  # service point -> this incarnation's epoch, set at start
        self._heads: dict[tuple[str, str], Head] = {}  # (service point, day) -> chain head

    async def __call__(self, batch: WriteBatch) -> None:
        """Link the batch's journal entries into their chains, then commit."""
        chains = batch.chain_days()
        unknown = sorted(c for c in chains if c not in self._heads)
        if unknown:  # a day this incarnation has not written yet: ask the store
            for which, head in zip(unknown, await self._store.chain_heads(unknown), strict=True):
                self._heads[which] = Head.decode(head)
        actors = {sp: f"{sp}/{epoch}" for sp, epoch in self._epochs.items()}
        moved = batch.link(self._heads, actors)
        await self._store.commit(batch, self._epochs)
        self._heads.update(moved)
        if len(self._heads) > 64:  # days long past: their heads are read again if needed
            for which in [c for c in self._heads if c not in chains]:
                del self._heads[which]
