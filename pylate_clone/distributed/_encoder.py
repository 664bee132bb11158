"""The encoding worker: one model replica per Ray actor, batches of texts in, vectors out."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..resources import load_model
from ._corpus import document_text


class DocumentEncoder:
    """Callable class that Ray Data runs in an actor pool (``map_batches``).

    Each actor loads the model once (seeded like the command line's, so a
    projection created at load time is the same in every replica) and turns a
    batch of corpus rows into one token-vector matrix per document.

    Parameters
    ----------
    model_name_or_path
        The ColBERT checkpoint (folder or hub id) every replica loads.
    batch_size
        Texts per forward pass.
    device
        Torch device; None picks CUDA when the actor was given a GPU.
    torch_threads
        Intra-op threads of the replica (its CPU share, so replicas on one
        machine do not oversubscribe it).
    """

    def __init__(
        self,
        model_name_or_path: str,
        batch_size: int,
        device: str | None,
        torch_threads: int,
    ) -> None:
        import torch

        torch.set_num_threads(max(1, int(torch_threads)))
        if device is None and torch.cuda.is_available():
            device = "cuda"
        self.model = load_model(model_name_or_path, device=device, quiet=True)
        self.batch_size = batch_size
        self.pid = os.getpid()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Encode one batch of rows.

        Parameters
        ----------
        batch
            Columns ``_id``, ``text`` and optionally ``title`` (numpy arrays).

        Returns
        -------
        dict
            ``_id``: the ids as strings; ``embedding``: per document a float32
            ``(L_i, H)`` matrix.
        """
        ids = [str(i) for i in batch["_id"].tolist()]
        titles = batch["title"].tolist() if "title" in batch else [None] * len(ids)
        texts = []
        for position, (title, text) in enumerate(zip(titles, batch["text"].tolist())):
            if text is not None and not isinstance(text, str):
                raise TypeError(
                    f"corpus document {ids[position]!r}: text must be a string, "
                    f"got {type(text).__name__}."
                )
            texts.append(document_text(title, text))
        embeddings = self.model.encode(
            texts,
            is_query=False,
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        matrices = [np.asarray(m, dtype=np.float32) for m in embeddings]
        column = np.empty(len(matrices), dtype=object)
        column[:] = matrices
        return {"_id": np.asarray(ids, dtype=object), "embedding": column}
