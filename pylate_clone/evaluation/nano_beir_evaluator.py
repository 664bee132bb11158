"""NanoBEIR evaluation for ColBERT models, from the hub or from local BEIR folders."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Literal

from sentence_transformers.sentence_transformer.evaluation import (
    NanoBEIREvaluator as _STNanoBEIREvaluator,
)

from .custom_dataset import load_beir_folder
from .pylate_information_retrieval_evaluator import PyLateInformationRetrievalEvaluator

logger = logging.getLogger(__name__)

DatasetNameType = Literal[
    "climatefever",
    "dbpedia",
    "fever",
    "fiqa2018",
    "hotpotqa",
    "msmarco",
    "nfcorpus",
    "nq",
    "quoraretrieval",
    "scidocs",
    "arguana",
    "scifact",
    "touche2020",
]

MAPPING_DATASET_NAME_TO_HUMAN_READABLE = {
    "climatefever": "ClimateFEVER",
    "dbpedia": "DBPedia",
    "fever": "FEVER",
    "fiqa2018": "FiQA2018",
    "hotpotqa": "HotpotQA",
    "msmarco": "MSMARCO",
    "nfcorpus": "NFCorpus",
    "nq": "NQ",
    "quoraretrieval": "QuoraRetrieval",
    "scidocs": "SCIDOCS",
    "arguana": "ArguAna",
    "scifact": "SciFact",
    "touche2020": "Touche2020",
}

MAPPING_DATASET_NAME_TO_ID = {
    name: f"zeta-alpha-ai/Nano{human}"
    for name, human in MAPPING_DATASET_NAME_TO_HUMAN_READABLE.items()
}


def _is_local(dataset_name: str) -> bool:
    return os.path.isdir(dataset_name)


class NanoBEIREvaluator(_STNanoBEIREvaluator):
    """sentence-transformers' ``NanoBEIREvaluator`` with ColBERT (MaxSim) search.

    ``dataset_names`` may mix NanoBEIR names (``"scifact"``, loaded from the hub
    dataset ``zeta-alpha-ai/Nano{Name}``) and paths to local BEIR-format folders
    (``corpus.jsonl``, ``queries.jsonl``, qrels TSV; see
    :func:`~pylate_clone.evaluation.load_custom_dataset`), which need no network.
    A local folder is reported as ``Nano{folder name}`` (``NanoSciFact`` for a
    folder named ``scifact``; characters other than letters and digits dropped) and its ``split`` is
    ``local_split`` (default ``"test"``).

    Metric keys: ``Nano{Name}_MaxSim_{metric}@{k}`` per dataset and
    ``NanoBEIR_mean_MaxSim_{metric}@{k}`` aggregated; the primary metric is
    ``NanoBEIR_mean_MaxSim_ndcg@10``. Other arguments are sentence-transformers'.
    """

    information_retrieval_class = PyLateInformationRetrievalEvaluator

    def __init__(self, *args: Any, local_split: str = "test", **kwargs: Any) -> None:
        self.local_split = local_split
        super().__init__(*args, **kwargs)

    def _validate_dataset_names(self) -> None:
        if len(self.dataset_names) == 0:
            raise ValueError(
                "dataset_names cannot be empty. Use None to evaluate on all datasets."
            )
        unknown = [
            name
            for name in self.dataset_names
            if not _is_local(name) and name.lower() not in MAPPING_DATASET_NAME_TO_ID
        ]
        if unknown:
            raise ValueError(
                f"Dataset(s) {unknown} are neither NanoBEIR datasets nor local BEIR "
                f"folders. Valid names: {list(MAPPING_DATASET_NAME_TO_ID)}."
            )

    def _get_human_readable_name(self, dataset_name: str) -> str:
        if _is_local(dataset_name):
            folder = Path(dataset_name).resolve().name
            # sentence-transformers splits metric keys on "_": keep names free of it.
            readable = MAPPING_DATASET_NAME_TO_HUMAN_READABLE.get(
                folder.lower(), re.sub(r"[^0-9A-Za-z]", "", folder)
            )
            name = f"Nano{readable}"
        else:
            name = f"Nano{MAPPING_DATASET_NAME_TO_HUMAN_READABLE[dataset_name.lower()]}"
        if self.truncate_dim is not None:
            name += f"_{self.truncate_dim}"
        return name

    def _load_from_hub(self, dataset_name: str) -> tuple[dict, dict, dict]:
        from datasets import load_dataset

        dataset_id = MAPPING_DATASET_NAME_TO_ID[dataset_name.lower()]
        corpus = load_dataset(dataset_id, "corpus", split="train")
        queries = load_dataset(dataset_id, "queries", split="train")
        qrels = load_dataset(dataset_id, "qrels", split="train")
        corpus = {row["_id"]: row["text"] for row in corpus if row["text"]}
        queries = {row["_id"]: row["text"] for row in queries if row["text"]}
        relevant: dict[str, set] = {}
        for row in qrels:
            ids = row["corpus-id"]
            relevant.setdefault(row["query-id"], set()).update(
                ids if isinstance(ids, list) else [ids]
            )
        return corpus, queries, relevant

    def _load_local(self, folder: str) -> tuple[dict, dict, dict]:
        corpus, queries, qrels = load_beir_folder(folder, split=self.local_split)
        corpus = {
            doc_id: f"{doc.get('title') or ''} {doc['text']}".strip()
            for doc_id, doc in corpus.items()
        }
        corpus = {doc_id: text for doc_id, text in corpus.items() if text}
        relevant = {
            qid: {doc_id for doc_id, score in judged.items() if score > 0}
            for qid, judged in qrels.items()
        }
        return corpus, queries, relevant

    def _load_dataset(
        self, dataset_name: str, **ir_evaluator_kwargs: Any
    ) -> PyLateInformationRetrievalEvaluator:
        if _is_local(dataset_name):
            corpus, queries, relevant = self._load_local(dataset_name)
        else:
            corpus, queries, relevant = self._load_from_hub(dataset_name)
        if self.query_prompts is not None:
            ir_evaluator_kwargs["query_prompt"] = self.query_prompts.get(dataset_name)
        if self.corpus_prompts is not None:
            ir_evaluator_kwargs["corpus_prompt"] = self.corpus_prompts.get(dataset_name)
        return self.information_retrieval_class(
            queries=queries,
            corpus=corpus,
            relevant_docs=relevant,
            name=self._get_human_readable_name(dataset_name),
            **ir_evaluator_kwargs,
        )
