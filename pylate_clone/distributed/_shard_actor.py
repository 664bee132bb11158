"""The Ray actor that holds one shard of a sharded index open."""

from __future__ import annotations

import os
from typing import Any

from ._layout import SHARD_CLASSES


class ShardServer:
    """One shard's index, opened once and kept in the actor's memory.

    Ray restarts the actor if its process dies; the new process reopens the
    shard at its last committed state (every write of the shard is atomic).

    Parameters
    ----------
    root
        The sharded index folder (holding the shard folders).
    name
        The shard's folder name.
    kind
        The shard's index kind (``"plaid"`` or ``"exact"``).
    """

    def __init__(self, root: str, name: str, kind: str) -> None:
        self.index = SHARD_CLASSES[kind](
            index_folder=root, index_name=name, override=False, show_progress=False
        )

    def pid(self) -> int:
        """The actor's process id (what a fault test kills)."""
        return os.getpid()

    def search(self, queries: list, k: int, subset: Any) -> list[list[dict]]:
        """Ranked ``{"id", "score"}`` per query; empty lists for an empty shard."""
        if len(self.index) == 0:
            return [[] for _ in queries]
        return self.index(queries, k=k, subset=subset)

    def add(self, ids: list, embeddings: list) -> int:
        """Add (or replace) documents in one commit; returns the shard's size."""
        self.index.add_documents(ids, embeddings)
        return len(self.index)

    def remove(self, ids: list) -> int:
        """Remove the documents among ``ids`` this shard holds; returns its size."""
        known = [i for i in ids if i in self.index]
        if known:
            self.index.remove_documents(known)
        return len(self.index)

    def embeddings(self, ids: list) -> list:
        """Stored float32 matrices of ``ids`` (``KeyError`` naming a missing id)."""
        return self.index.get_documents_embeddings([ids])[0]

    def size(self) -> int:
        """Documents in the shard (at its last commit)."""
        return len(self.index)

    def documents_ids(self) -> list:
        """The shard's ids in its internal order."""
        return self.index.documents_ids

    def contains(self, ids: list) -> list[bool]:
        """Whether each id is in the shard (after reloading its last commit)."""
        len(self.index)  # reload, so ids committed by another process count
        return [i in self.index for i in ids]
