"""Read index folders written by PyLate 1.6 (Voyager and fast-plaid PLAID).

PyLate keeps its id maps as pickles. They are read only when the caller passes
``trust_pickle=True``, and even then through an unpickler that refuses every
global, so only plain containers (dict, list, str, int) can come out of them.

A PLAID folder is read by decompressing fast-plaid's codec: each token vector
is its centroid plus the per-dimension residual buckets (``nbits`` per
dimension, least significant bit first, packed most significant bit first in
bytes), then L2-normalised. These are exactly the vectors fast-plaid scores at
search time, so exact MaxSim over them gives PyLate's PLAID ranking.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..storage.commit import IndexFormatError

VOYAGER_FILES = (
    "index.voyager",
    "document_ids_to_embeddings.pkl",
    "embeddings_to_documents_ids.pkl",
)
PLAID_FILES = ("plaid_ids_to_documents_ids.pkl", "documents_ids_to_plaid_ids.pkl")
FAST_PLAID_DIR = "fast_plaid_index"


def pylate_folder_kind(path: str | Path) -> str | None:
    """``"voyager"`` or ``"plaid"`` when ``path`` is a PyLate 1.6 index folder."""
    path = Path(path)
    if not path.is_dir():
        return None
    if all((path / name).is_file() for name in VOYAGER_FILES):
        return "voyager"
    if (path / FAST_PLAID_DIR).is_dir() and all(
        (path / name).is_file() for name in PLAID_FILES
    ):
        return "plaid"
    return None


def describe_pylate_folder(path: str | Path) -> str | None:
    """Error text for opening a PyLate 1.6 folder, naming the fix; else ``None``.

    Index constructors call this when they meet a folder they did not write.
    """
    kind = pylate_folder_kind(path)
    if kind is None:
        return None
    return (
        f"{path} is a PyLate 1.6 {kind} index (pickle id maps), which pylate_clone "
        "does not open directly. If you trust its files, convert it in place with "
        f"pylate_clone.indexes.migrate_pylate_index({str(path)!r}, "
        "trust_pickle=True) or `pylate-clone migrate PATH --trust-pickle`; the "
        "original is kept as PATH.pylate-backup."
    )


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: a PyLate id map holds only plain "
            "dicts, lists, strings and integers"
        )


def read_pickle(path: Path, trust_pickle: bool) -> Any:
    """Load a PyLate pickle made of plain containers, only if trusted."""
    if not trust_pickle:
        raise ValueError(
            f"{path} is a pickle, and reading a pickle can run code from the file. "
            "Pass trust_pickle=True only if you trust this folder."
        )
    try:
        return _PlainUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise IndexFormatError(f"{path} is not a PyLate id map ({error}).") from None


def read_voyager(
    path: Path, trust_pickle: bool
) -> tuple[list[Any], list[np.ndarray], dict[str, int]]:
    """Documents of a PyLate Voyager folder: ``(ids, matrices, parameters)``.

    The vectors come from Voyager's own file (float32, exact); the pickle tells
    which vector ids belong to which document.
    """
    import voyager

    owners = read_pickle(path / "document_ids_to_embeddings.pkl", trust_pickle)
    if not isinstance(owners, dict):
        raise IndexFormatError(f"{path}/document_ids_to_embeddings.pkl is not a dict.")
    index = voyager.Index.load(str(path / "index.voyager"))
    ids, matrices = [], []
    for document_id, vector_ids in owners.items():
        if not vector_ids:
            continue
        ids.append(document_id)
        matrices.append(np.asarray(index.get_vectors(list(vector_ids)), np.float32))
    params = {
        "embedding_size": int(index.num_dimensions),
        "M": int(index.M),
        "ef_construction": int(index.ef_construction),
    }
    return ids, matrices, params


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise IndexFormatError(f"{path} could not be read ({error}).") from None


def decompress(
    centroids: np.ndarray,
    codes: np.ndarray,
    residuals: np.ndarray,
    bucket_weights: np.ndarray,
    nbits: int,
) -> np.ndarray:
    """Token vectors ``(n, dim)`` from fast-plaid's centroid codes and packed residuals."""
    dim = centroids.shape[1]
    if residuals.shape[1] * 8 != dim * nbits:
        raise IndexFormatError(
            f"residuals hold {residuals.shape[1]} bytes per vector; {dim} dimensions "
            f"at {nbits} bits need {dim * nbits // 8}."
        )
    bits = np.unpackbits(residuals, axis=1).reshape(len(residuals), dim, nbits)
    buckets = (bits * (1 << np.arange(nbits, dtype=np.uint8))).sum(-1)
    vectors = centroids[codes].astype(np.float32) + bucket_weights[buckets]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def read_plaid(
    path: Path, trust_pickle: bool
) -> tuple[list[Any], list[np.ndarray], dict[str, int]]:
    """Documents of a PyLate (fast-plaid) PLAID folder: ``(ids, matrices, params)``."""
    plaid_to_doc = read_pickle(path / "plaid_ids_to_documents_ids.pkl", trust_pickle)
    if not isinstance(plaid_to_doc, dict):
        raise IndexFormatError(f"{path}/plaid_ids_to_documents_ids.pkl is not a dict.")
    folder = path / FAST_PLAID_DIR
    try:
        plan = json.loads((folder / "metadata.json").read_text())
        nbits, chunks = int(plan["nbits"]), int(plan["num_chunks"])
    except (OSError, ValueError, KeyError) as error:
        raise IndexFormatError(f"{folder}/metadata.json is unreadable ({error}).")
    centroids = _load_npy(folder / "centroids.npy").astype(np.float32)
    weights = _load_npy(folder / "bucket_weights.npy").astype(np.float32)
    documents: list[np.ndarray] = []
    for chunk in range(chunks):
        lengths = json.loads((folder / f"doclens.{chunk}.json").read_text())
        vectors = decompress(
            centroids,
            _load_npy(folder / f"{chunk}.codes.npy"),
            _load_npy(folder / f"{chunk}.residuals.npy"),
            weights,
            nbits,
        )
        if sum(lengths) != len(vectors):
            raise IndexFormatError(
                f"{folder}: doclens.{chunk}.json counts {sum(lengths)} tokens, the "
                f"codes hold {len(vectors)}."
            )
        documents.extend(np.split(vectors, np.cumsum(lengths)[:-1]))
    ids, matrices = [], []
    for plaid_id, document_id in sorted(plaid_to_doc.items()):
        if not 0 <= plaid_id < len(documents):
            raise IndexFormatError(
                f"{path}: PLAID id {plaid_id} has no vectors ({len(documents)} "
                "documents in fast_plaid_index)."
            )
        ids.append(document_id)
        matrices.append(documents[plaid_id])
    return ids, matrices, {"nbits": nbits, "embedding_size": centroids.shape[1]}
