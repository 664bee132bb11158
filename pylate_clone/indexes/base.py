"""Abstract index interface and the id semantics every index shares."""

from __future__ import annotations

import logging
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._docs import fill_doc
from .storage.commit import FolderStore, IndexFormatError
from .storage.filters import CompiledFilter, check_filter
from .storage.idmap import DocumentId, DocumentIdMap, describe_ids, normalize_ids
from .utils import as_matrices, check_k

logger = logging.getLogger(__name__)


@fill_doc
class Base(ABC):
    """Common base of every index (:class:`Voyager`, :class:`PLAID`, ...).

    Subclasses set ``is_end_to_end_index`` (``True`` when ``__call__`` returns
    final ranked results, ``False`` for token-level indexes whose hits the
    retriever reranks) and ``kind`` (the type recorded on disk). The user-id
    mapping is one :class:`~pylate_clone.indexes.storage.idmap.DocumentIdMap`.

    Parameters
    ----------
    %(location)s
    """

    is_end_to_end_index: bool = False
    kind: str = ""
    _store: FolderStore

    def __init__(
        self,
        index_folder: str | os.PathLike = "indexes",
        index_name: str = "colbert",
        override: bool = False,
    ) -> None:
        if not isinstance(index_name, str) or not index_name or "/" in index_name:
            raise ValueError(
                f"index_name must be a non-empty folder name, got {index_name!r}."
            )
        self.index_folder = str(index_folder)
        self.index_name = index_name
        self.override = bool(override)
        self.index_path = str(Path(index_folder) / index_name)
        self._ids = DocumentIdMap()

    def _sync(self) -> None:
        """Bring the in-memory view up to the last commit (no-op by default)."""

    # -- opening the folder (indexes stored through a FolderStore) ---------------

    def _open(self) -> None:
        """Load the committed index, or commit an empty one (missing folder, override)."""
        if self.override:
            self._wipe()
        else:
            self._store.check_not_foreign()
        if self._store.exists():
            self._load_committed()
        else:
            self._start_empty()

    def _wipe(self) -> None:
        """``override=True``: commit an empty index (or clear a foreign folder).

        Committing an empty index is atomic and garbage collection then deletes
        the old files, so a process killed meanwhile leaves a valid index; a
        folder that is not one of ours (or whose manifest is damaged) is removed.
        """
        path = Path(self.index_path)
        if not path.exists():
            return
        if self._store.exists():
            try:
                self._store.read_manifest()
            except IndexFormatError:
                pass
            else:
                self._start_empty()
                return
        shutil.rmtree(path)

    def _load_committed(self) -> None:
        """Read the index the manifest names (the layout's hook)."""
        raise NotImplementedError  # pragma: no cover - provided by the layout

    def _start_empty(self) -> None:
        """Forget the in-memory state and commit an empty index (the layout's hook)."""
        raise NotImplementedError  # pragma: no cover - provided by the layout

    # -- public API --------------------------------------------------------------

    def __len__(self) -> int:
        """Number of documents in the index."""
        self._sync()
        return len(self._ids)

    def __contains__(self, document_id: object) -> bool:
        """Whether ``document_id`` is indexed (in the view of the last sync)."""
        return document_id in self._ids

    @property
    def documents_ids(self) -> list[DocumentId]:
        """Ids of the indexed documents, in internal order."""
        self._sync()
        return self._ids.ids

    def _known_for_removal(self, documents_ids: Any) -> list[DocumentId]:
        """Normalised, de-duplicated ids to remove; unknown ones are skipped.

        PyLate skips ids that are not indexed; so do we, but a warning names
        them so that a typo does not pass silently.
        """
        ids = list(dict.fromkeys(normalize_ids(documents_ids)))
        if not ids:
            raise ValueError("documents_ids is empty: nothing to remove.")
        unknown = self._ids.unknown(ids)
        if unknown:
            logger.warning(
                "remove_documents: %d id(s) not in the index were skipped: %s",
                len(unknown),
                describe_ids(unknown),
            )
        known = set(ids) - set(unknown)
        return [i for i in ids if i in known]

    @property
    def name(self) -> str:
        """PyLate's ``Base`` name for the index (our ``index_name``)."""
        return self.index_name

    @property
    def recreate(self) -> bool:
        """PyLate's ``Base`` flag for starting empty (our ``override``)."""
        return self.override

    @abstractmethod
    def add_documents(
        self,
        documents_ids: Any,
        documents_embeddings: Any = None,
        batch_size: int = 2000,
    ) -> Base:
        """Add documents; an id already present is replaced.

        ``batch_size`` is how many documents are written per step, where the
        index writes in steps.
        """

    @abstractmethod
    def remove_documents(self, documents_ids: Any) -> Base:
        """Remove documents; unknown ids are skipped with a warning."""

    def update_documents(self, documents_ids: Any, documents_embeddings: Any) -> Base:
        """Replace documents in one atomic write; ids not yet indexed are added.

        This follows PyLate, whose ``update_documents`` adds missing ids.
        """
        return self.add_documents(documents_ids, documents_embeddings)

    @abstractmethod
    def __call__(self, queries_embeddings: Any, k: int = 5) -> Any:
        """Search the index (each index sets its own default ``k``, PyLate's)."""

    @abstractmethod
    def get_documents_embeddings(self, documents_ids: list[list[DocumentId]]) -> Any:
        """Stored embeddings of documents, grouped like ``documents_ids``."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(index_path={self.index_path!r}, "
            f"documents={len(self)})"
        )


class EndToEndSearch:
    """``__call__`` of an end-to-end index (ranked documents): checks, then ``_search``.

    Mixed in before :class:`Base` by the indexes that rank documents
    themselves (:class:`Exact`, :class:`PLAID`, :class:`FastPlaid`), so that
    PyLate's search signature, its documentation and the checks on the
    queries are written once.
    """

    is_end_to_end_index = True
    # Provided by the index class (annotations only: no value shadows theirs).
    _dim: int | None
    _ids: DocumentIdMap
    _sync: Callable[[], None]

    #: Whether the index stores texts and metadata (``filter`` is accepted).
    stores_documents = False

    def _search(
        self, queries: list, k: int, subset: Any, filter: CompiledFilter | None = None
    ) -> list[list[dict]]:
        """Rank documents for checked queries of a non-empty index (the index's hook).

        ``queries`` are the checked query matrices, ``subset`` is ``__call__``'s,
        ``filter`` the compiled metadata filter (only where ``stores_documents``).
        """
        raise NotImplementedError  # pragma: no cover - provided by the index

    @fill_doc
    def __call__(
        self,
        queries_embeddings: Any,
        k: int = 10,
        subset: list[DocumentId] | list[list[DocumentId]] | None = None,
        filter: dict[str, Any] | None = None,
    ) -> list[list[dict[str, Any]]]:
        """Search the index.

        %(search)s
        """
        k = check_k(k)
        compiled = check_filter(filter)
        if compiled is not None and not self.stores_documents:
            raise ValueError(
                f"filter: {type(self).__name__} stores no metadata; PLAID, Voyager "
                "and Exact do."
            )
        self._sync()
        queries = as_matrices(queries_embeddings, "queries_embeddings", self._dim)
        if not len(self._ids):
            raise ValueError(
                "The index is empty. Please add documents before querying."
            )
        if compiled is None:
            return self._search(queries, k, subset)
        return self._search(queries, k, subset, compiled)
