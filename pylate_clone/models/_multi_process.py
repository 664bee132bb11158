"""Multi-process encoding methods of ``ColBERT``: one worker process per device.

The workers themselves live in :mod:`pylate_clone.utils.multi_process`; this
mixin gives ``ColBERT`` PyLate's three methods on top of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..utils import multi_process


class MultiProcessEncoding:
    """``start_multi_process_pool`` / ``encode_multi_process`` / ``stop_multi_process_pool``."""

    def start_multi_process_pool(
        self, target_devices: list[str] | None = None
    ) -> dict[str, Any]:
        """Start one encoding worker process per device (default: every GPU, else 4 CPU workers).

        Returns
        -------
        dict
            ``{"input": Queue, "output": Queue, "processes": [...]}`` for
            :meth:`encode_multi_process` and :meth:`stop_multi_process_pool`.
        """
        return multi_process.start_pool(self, target_devices)

    def encode_multi_process(
        self,
        sentences: list[str],
        pool: dict[str, Any],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        chunk_size: int | None = None,
        precision: str = "float32",
        normalize_embeddings: bool = True,
        padding: bool = False,
        is_query: bool = True,
        pool_factor: int = 1,
        protected_tokens: int = 1,
    ) -> list[np.ndarray]:
        """Encode ``sentences`` with the worker processes of ``pool``.

        Returns
        -------
        list[numpy.ndarray]
            One ``(n_tokens, H)`` array per sentence, in input order.
        """
        return multi_process.encode_with_pool(
            pool,
            sentences,
            chunk_size=chunk_size,
            encode_kwargs={
                "prompt_name": prompt_name,
                "prompt": prompt,
                "batch_size": batch_size,
                "precision": precision,
                "normalize_embeddings": normalize_embeddings,
                "padding": padding,
                "is_query": is_query,
                "pool_factor": pool_factor,
                "protected_tokens": protected_tokens,
            },
        )

    @staticmethod
    def stop_multi_process_pool(pool: dict[str, Any]) -> None:
        """Terminate the workers of ``pool`` and close its queues."""
        multi_process.stop_pool(pool)
