"""Abstract index interface and the persistence logic every index shares."""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from ._idmap import DocumentId, DocumentIdMap, describe_ids, normalize_ids
from ._storage import IndexFormatError, IndexStore


class Base(ABC):
    """Common base of :class:`Voyager` and :class:`PLAID`.

    Subclasses set ``is_end_to_end_index`` (``True`` when ``__call__`` returns
    final ranked results, ``False`` for token-level indexes whose hits the
    retriever reranks) and ``kind`` (the type recorded on disk).

    Every index lives in ``{index_folder}/{index_name}`` and is made of
    immutable generations committed through an atomic manifest (see
    ``_storage.IndexStore``); the user-id mapping is a
    ``_idmap.DocumentIdMap`` saved as JSON in each generation.

    Parameters
    ----------
    index_folder
        Root folder of the indexes.
    index_name
        Sub-folder of this index.
    override
        Start from an empty index even if one exists in the folder.
    """

    is_end_to_end_index: bool = False
    kind: str = ""

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
        self._store = IndexStore(self.index_path, self.kind)
        self._ids = DocumentIdMap()

    # -- opening ---------------------------------------------------------------

    def _open(self) -> None:
        """Load the committed index, or create an empty one (override / missing)."""
        store = self._store
        if self.override:
            self._wipe()
        else:
            store.check_not_foreign()
        if store.exists():
            store.read_manifest()
            store.verify()
            self._ids = store.load_ids()
            self._load_generation(store.current, store.manifest)
        else:
            self._ids = DocumentIdMap()
            self._create_empty()

    def _wipe(self) -> None:
        """Remove the content of the folder for ``override=True``."""
        path = Path(self.index_path)
        if not path.exists():
            return
        if self._store.exists():
            try:
                self._store.read_manifest()
            except IndexFormatError:
                pass
            else:
                # Committing an empty generation is atomic; garbage collection then
                # deletes the old generations.
                self._ids = DocumentIdMap()
                self._create_empty()
                return
        shutil.rmtree(path)

    @abstractmethod
    def _create_empty(self) -> None:
        """Commit an empty generation and set the in-memory state accordingly."""

    @abstractmethod
    def _load_generation(self, folder: Path, manifest: dict[str, Any]) -> None:
        """Load the payload of a verified generation folder."""

    # -- public API --------------------------------------------------------------

    def __len__(self) -> int:
        """Number of documents in the index."""
        return len(self._ids)

    def __contains__(self, document_id: object) -> bool:
        """Whether ``document_id`` is indexed."""
        return document_id in self._ids

    @property
    def documents_ids(self) -> list[DocumentId]:
        """Ids of the indexed documents, in internal order."""
        return self._ids.ids

    def _check_known(self, documents_ids: Any) -> list[DocumentId]:
        """Normalise ids and raise ``KeyError`` naming a few unknown ones."""
        ids = normalize_ids(documents_ids)
        if not ids:
            raise ValueError("documents_ids is empty.")
        unknown = self._ids.unknown(ids)
        if unknown:
            raise KeyError(
                f"{len(unknown)} document id(s) not in the index: "
                f"{describe_ids(unknown)}."
            )
        return list(dict.fromkeys(ids))

    @abstractmethod
    def add_documents(
        self, documents_ids: Any, documents_embeddings: Any, **kwargs: Any
    ) -> Base:
        """Add documents; an id already present is replaced."""

    @abstractmethod
    def remove_documents(self, documents_ids: Any) -> Base:
        """Remove documents; unknown ids raise ``KeyError``."""

    def update_documents(self, documents_ids: Any, documents_embeddings: Any) -> Base:
        """Replace existing documents (all ids must be indexed) in one atomic write.

        Raises
        ------
        KeyError
            If some ids are not in the index.
        """
        self._check_known(documents_ids)
        return self.add_documents(documents_ids, documents_embeddings)

    @abstractmethod
    def __call__(self, queries_embeddings: Any, k: int = 10, **kwargs: Any) -> Any:
        """Search the index."""

    @abstractmethod
    def get_documents_embeddings(self, documents_ids: list[list[DocumentId]]) -> Any:
        """Stored embeddings of documents (token-level indexes only)."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(index_path={self.index_path!r}, "
            f"documents={len(self)})"
        )
