"""``ShardedIndex``: one Ray actor per shard, queries fanned out, top-k merged."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..indexes import normalize_id, normalize_ids
from ..indexes.utils import (
    as_matrices,
    check_documents,
    check_int,
    check_k,
    to_float32_numpy,
)
from . import _layout
from ._cluster import connect
from ._shard_actor import ShardServer


class ShardUnavailableError(RuntimeError):
    """A shard's actor died; Ray is restarting it and the call can be retried."""


class ShardedIndex:
    """A sharded index searched in parallel by one Ray actor per shard.

    Documents are split by ``crc32(str(id)) % shards`` (see
    :func:`~pylate_clone.distributed.shard_of`); each shard is an ordinary
    PLAID or Exact index folder, opened once by its actor. A query is sent to
    every shard and the shards' top-k are merged by score (ties: lower shard
    number first, then the shard's own order), so an exact sharded index
    answers like the same documents in one exact index. It is an end-to-end
    index: ``retrieve.ColBERT(index=ShardedIndex(...))`` works, as do the
    command line's ``search`` and ``serve``.

    Writes go to the shard owning each id; every shard commits its part
    atomically, but one ``add_documents`` spanning several shards is one
    commit per shard, not one in all. The shard folders must be readable
    from every node that runs a shard actor (a shared filesystem on a
    multi-machine cluster).

    Parameters
    ----------
    index_folder, index_name
        The sharded index lives in ``{index_folder}/{index_name}``.
    ray_address
        None starts or joins a local Ray; ``"auto"`` or ``"ray://host:port"``
        joins a cluster.

    Raises
    ------
    ShardedLayoutError
        If the folder is not a sharded index.
    """

    is_end_to_end_index = True
    kind = "sharded"

    def __init__(
        self,
        index_folder: str | os.PathLike = "indexes",
        index_name: str = "colbert",
        ray_address: str | None = None,
    ) -> None:
        manifest = _layout.read_manifest(index_folder, index_name)
        self.index_folder = str(index_folder)
        self.index_name = index_name
        self.index_path = str(Path(index_folder) / index_name)
        self.shard_kind: str = manifest["shard_kind"]
        self.shard_names: list[str] = list(manifest["shards"])
        self.show_progress = False
        ray = connect(ray_address)
        self._ray = ray
        # Restarted without limit when a process dies; a call that hit the
        # dead actor is not retried, so its caller gets an error naming it.
        remote = ray.remote(ShardServer).options(
            num_cpus=0,
            max_restarts=-1,
            max_task_retries=0,
            scheduling_strategy="SPREAD",
        )
        self._actors = [
            remote.remote(self.index_path, name, self.shard_kind)
            for name in self.shard_names
        ]
        # Opening errors (a damaged shard) surface here, not at the first query.
        self._gather([a.pid.remote() for a in self._actors], "open")

    @property
    def num_shards(self) -> int:
        """Number of shards."""
        return len(self._actors)

    def _gather(self, refs: list, action: str) -> list:
        """``ray.get`` of one call per shard, naming the shard that failed."""
        ray = self._ray
        results = []
        for number, ref in enumerate(refs):
            try:
                results.append(ray.get(ref))
            except ray.exceptions.RayActorError as error:
                raise ShardUnavailableError(
                    f"{action}: shard {number} ({self.index_path}/"
                    f"{self.shard_names[number]}) is unavailable: its actor died "
                    "and Ray is restarting it; retry shortly. "
                    f"({str(error).strip().splitlines()[0]})"
                ) from None
            except ray.exceptions.RayTaskError as error:
                # The shard's own exception (ValueError, KeyError...) with its
                # message, raised as that type.
                raise error.as_instanceof_cause() from None
        return results

    def shard_of(self, document_id: Any) -> int:
        """Number of the shard owning ``document_id``."""
        return _layout.shard_of(document_id, len(self._actors))

    def _route(self, ids: list) -> dict[int, list[int]]:
        """Positions of ``ids`` grouped by owning shard."""
        groups: dict[int, list[int]] = {}
        for position, document_id in enumerate(ids):
            groups.setdefault(self.shard_of(document_id), []).append(position)
        return groups

    # -- search ------------------------------------------------------------------

    def __call__(
        self,
        queries_embeddings: Any,
        k: int = 10,
        subset: list[Any] | list[list[Any]] | None = None,
    ) -> list[list[dict[str, Any]]]:
        """Search every shard and merge the top ``k`` of each query.

        Parameters
        ----------
        queries_embeddings
            ``n`` query matrices ``(Lq_i, H)``, or one ``(Lq, H)`` matrix.
        k
            Documents per query.
        subset
            Allowed ids, shared by all queries or one list per query (each
            shard ignores the ids it does not hold).

        Returns
        -------
        list[list[dict]]
            Per query, up to ``k`` ``{"id", "score"}`` best first.
        """
        k = check_k(k)
        queries = [
            to_float32_numpy(q)
            for q in as_matrices(queries_embeddings, "queries_embeddings")
        ]
        if len(self) == 0:
            raise ValueError(
                "The index is empty. Please add documents before querying."
            )
        shared = self._ray.put(queries)
        per_shard = self._gather(
            [a.search.remote(shared, k, subset) for a in self._actors], "search"
        )
        merged = []
        for q in range(len(queries)):
            pooled = [
                (-hit["score"], shard, rank, hit)
                for shard, answers in enumerate(per_shard)
                for rank, hit in enumerate(answers[q])
            ]
            pooled.sort(key=lambda entry: entry[:3])
            merged.append([entry[3] for entry in pooled[:k]])
        return merged

    # -- reads -------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of documents over all shards."""
        return sum(self._gather([a.size.remote() for a in self._actors], "len"))

    @property
    def documents_ids(self) -> list:
        """Ids of every shard, shard after shard."""
        per_shard = self._gather(
            [a.documents_ids.remote() for a in self._actors], "documents_ids"
        )
        return [i for ids in per_shard for i in ids]

    def __contains__(self, document_id: object) -> bool:
        """Whether the owning shard holds ``document_id``."""
        try:
            key = normalize_id(document_id)
        except TypeError:
            return False
        shard = self.shard_of(key)
        return self._gather([self._actors[shard].contains.remote([key])], "contains")[
            0
        ][0]

    def get_documents_embeddings(self, documents_ids: list[list[Any]]) -> list[list]:
        """Stored token vectors of documents, grouped like ``documents_ids``.

        Raises
        ------
        KeyError
            If an id is in no shard.
        """
        groups = [normalize_ids(group) for group in documents_ids]
        flat = [i for group in groups for i in group]
        found: list[Any] = [None] * len(flat)
        routed = self._route(flat)
        shards = list(routed)
        answers = self._gather(
            [
                self._actors[s].embeddings.remote([flat[p] for p in routed[s]])
                for s in shards
            ],
            "get_documents_embeddings",
        )
        for shard, matrices in zip(shards, answers):
            for position, matrix in zip(routed[shard], matrices):
                found[position] = matrix
        out, start = [], 0
        for group in groups:
            out.append(found[start : start + len(group)])
            start += len(group)
        return out

    # -- writes ------------------------------------------------------------------

    def add_documents(
        self, documents_ids: Any, documents_embeddings: Any, batch_size: int = 2000
    ) -> ShardedIndex:
        """Add (or replace) documents, each in the shard owning its id.

        Parameters
        ----------
        documents_ids
            ``n`` ids (str or int), or one id.
        documents_embeddings
            ``n`` matrices ``(L_i, H)``, or one matrix for one id.
        batch_size
            Accepted for PyLate compatibility (checked; each shard writes its
            documents in one transaction).

        Returns
        -------
        ShardedIndex
            ``self``.
        """
        check_int("batch_size", batch_size, minimum=1)
        ids, matrices = check_documents(documents_ids, documents_embeddings)
        routed = self._route(ids)
        self._gather(
            [
                self._actors[s].add.remote(
                    [ids[p] for p in positions],
                    [to_float32_numpy(matrices[p]) for p in positions],
                )
                for s, positions in routed.items()
            ],
            "add_documents",
        )
        return self

    def update_documents(
        self, documents_ids: Any, documents_embeddings: Any
    ) -> ShardedIndex:
        """Replace documents (ids not yet indexed are added), shard by shard."""
        return self.add_documents(documents_ids, documents_embeddings)

    def remove_documents(self, documents_ids: Any) -> ShardedIndex:
        """Remove documents from their shards; ids in no shard are skipped."""
        ids = list(dict.fromkeys(normalize_ids(documents_ids)))
        if not ids:
            raise ValueError("documents_ids is empty: nothing to remove.")
        routed = self._route(ids)
        self._gather(
            [
                self._actors[s].remove.remote([ids[p] for p in positions])
                for s, positions in routed.items()
            ],
            "remove_documents",
        )
        return self

    def shard_pids(self) -> list[int]:
        """Process id of each shard's actor (for monitoring and fault tests)."""
        return self._gather([a.pid.remote() for a in self._actors], "shard_pids")

    def close(self) -> None:
        """Stop the shard actors (the folders stay as committed)."""
        for actor in self._actors:
            self._ray.kill(actor, no_restart=True)
        self._actors = []

    def __repr__(self) -> str:
        return (
            f"ShardedIndex(index_path={self.index_path!r}, "
            f"shards={len(self.shard_names)}, kind={self.shard_kind!r})"
        )
