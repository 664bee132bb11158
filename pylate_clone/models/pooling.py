"""Hierarchical token pooling of document embeddings."""

from __future__ import annotations

import numpy as np
import torch
from scipy.cluster.hierarchy import fcluster, linkage

from ..utils.validation import check_int


def pool_embeddings_hierarchical(
    documents_embeddings: list[torch.Tensor],
    pool_factor: int = 1,
    protected_tokens: int = 1,
) -> list[torch.Tensor]:
    """Reduce each document's token vectors by Ward clustering of cosine distances.

    Parameters
    ----------
    documents_embeddings
        One ``(n_tokens, H)`` tensor per document (L2-normalised vectors).
    pool_factor
        Target reduction: the ``n`` poolable tokens become ``max(n // pool_factor, 1)``
        cluster means. Must be >= 1.
    protected_tokens
        Leading tokens (e.g. ``[CLS]``) copied unchanged in front of the pooled ones.

    Returns
    -------
    list[torch.Tensor]
        Per document, ``(protected + n_clusters, H)`` on CPU; the cluster means are
        in label order and are not re-normalised.
    """
    check_int("pool_factor", pool_factor)
    check_int("protected_tokens", protected_tokens, minimum=0)
    pooled = []
    for embeddings in documents_embeddings:
        embeddings = embeddings.cpu()
        protected = embeddings[:protected_tokens]
        to_pool = embeddings[protected_tokens:]
        n = to_pool.shape[0]
        k = max(n // pool_factor, 1)
        if k >= n:
            pooled.append(torch.cat([protected, to_pool]))
            continue
        distances = (1.0 - to_pool @ to_pool.T).numpy()
        condensed = distances[np.triu_indices(n, k=1)]
        labels = fcluster(linkage(condensed, method="ward"), t=k, criterion="maxclust")
        labels_t = torch.from_numpy(labels.astype(np.int64)) - 1
        n_labels = int(labels_t.max()) + 1
        sums = torch.zeros(n_labels, to_pool.shape[1], dtype=to_pool.dtype)
        sums.index_add_(0, labels_t, to_pool)
        counts = torch.bincount(labels_t, minlength=n_labels)
        present = counts > 0
        means = sums[present] / counts[present].unsqueeze(1).to(to_pool.dtype)
        pooled.append(torch.cat([protected, means]))
    return pooled
