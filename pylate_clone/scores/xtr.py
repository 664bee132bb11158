"""XTR in-batch token-retrieval scores (training-time scorer)."""

from __future__ import annotations

from typing import Any

import torch

from ..utils.tensor import convert_to_tensor
from ..utils.validation import check_int
from ._groups import flatten_groups


class XTRScores:
    """XTR scores: MaxSim restricted to each query token's global top-k document tokens.

    Parameters
    ----------
    k
        Number of document tokens each query token retrieves across the whole batch.
    document_chunk_size
        Compute raw similarities this many documents at a time (same result, less
        peak memory). ``None`` computes them in one matmul.
    """

    def __init__(self, k: int = 256, document_chunk_size: int | None = None) -> None:
        check_int("k", k)
        check_int("document_chunk_size", document_chunk_size, allow_none=True)
        self.k = k
        self.document_chunk_size = document_chunk_size
        self._score_fn = self._scores

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """Replace the scoring function with ``torch.compile`` of it."""
        self._score_fn = torch.compile(self._scores, *args, **kwargs)

    def _scores(
        self,
        queries: torch.Tensor,
        documents: torch.Tensor,
        queries_mask: torch.Tensor | None,
        documents_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        qb, qt, h = queries.shape
        db, dt, _ = documents.shape
        flat_q = queries.reshape(qb * qt, h)
        chunk = self.document_chunk_size or db
        raw = torch.cat(
            [
                flat_q @ documents[start : start + chunk].reshape(-1, h).T
                for start in range(0, db, chunk)
            ],
            dim=1,
        )  # (Qb*Qt, Db*Dt)
        if documents_mask is not None:
            invalid = documents_mask.reshape(1, db * dt) == 0
            raw = raw.masked_fill(invalid, torch.finfo(raw.dtype).min)
        k = min(self.k, raw.shape[1])
        top = raw.topk(k, dim=1, sorted=False).indices
        selection = torch.zeros_like(raw).scatter_(1, top, 1.0)
        per_doc = (raw * selection).view(qb, qt, db, dt).amax(dim=3)
        if queries_mask is not None:
            per_doc = per_doc * queries_mask.to(per_doc.dtype)[:, :, None]
        total = per_doc.sum(dim=1)
        z = (per_doc > 0).sum(dim=1).to(total.dtype).clamp(min=1e-3)
        return (total / z).float()

    def __call__(
        self,
        queries_embeddings: Any,
        documents_embeddings: Any,
        queries_mask: Any = None,
        documents_mask: Any = None,
    ) -> torch.Tensor:
        """Score ``(Qb, Qt, H)`` queries against ``(D, N, Dt, H)`` documents.

        Returns
        -------
        torch.Tensor
            ``(Qb, D * N)`` float32 scores in query-major column order
            (:class:`XTRKDScores`: ``(Qb, N)``, each query's own group).
        """
        q, d, dm = flatten_groups(
            queries_embeddings, documents_embeddings, documents_mask
        )
        qm = convert_to_tensor(queries_mask) if queries_mask is not None else None
        return self._select(self._score_fn(q, d.to(q.dtype), qm, dm))

    def _select(self, full: torch.Tensor) -> torch.Tensor:
        """The scores returned from the ``(Qb, D * N)`` matrix (all of them)."""
        return full


class XTRKDScores(XTRScores):
    """XTR scores of each query against its own ``N`` documents, ``(Q, N)``."""

    def _select(self, full: torch.Tensor) -> torch.Tensor:
        """Row ``i``'s own group: columns ``i * N`` to ``i * N + N - 1``."""
        q = full.shape[0]
        n = full.shape[1] // q
        rows = torch.arange(q, device=full.device)[:, None]
        cols = rows * n + torch.arange(n, device=full.device)[None, :]
        return full.gather(1, cols)


xtr_scores = XTRScores()
xtr_kd_scores = XTRKDScores()
