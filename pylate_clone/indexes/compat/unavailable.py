"""Placeholder for an optional backend that cannot run on this stack."""

from __future__ import annotations

from typing import Any


class UnavailableBackend:
    """Base of an index class whose engine cannot be installed or run here.

    Subclasses keep PyLate's constructor signature, so PyLate code that names
    them imports fine; constructing one raises an ``ImportError`` naming the
    extra and the reason (``docs/backends.md``).
    """

    extra: str = ""
    reason: str = ""
    is_end_to_end_index = False

    def _unavailable(self) -> None:
        raise ImportError(
            f"indexes.{type(self).__name__} is not available in pylate_clone: "
            f"{self.reason} (PyLate's extra: '{self.extra}'; see docs/backends.md)."
        )

    def add_documents(
        self, documents_ids: Any, documents_embeddings: Any, batch_size: int = 2000
    ):
        """Unavailable: see the class docstring."""
        self._unavailable()

    def remove_documents(self, documents_ids: Any):
        """Unavailable: see the class docstring."""
        self._unavailable()

    def __call__(self, queries_embeddings: Any, k: int = 10):
        """Unavailable: see the class docstring."""
        self._unavailable()
