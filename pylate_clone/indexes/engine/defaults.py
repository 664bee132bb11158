"""The search knobs' defaults, each measured (docs/index_engine.md).

Re-exported by :mod:`.search`, whose interface they belong to.
"""

from __future__ import annotations


def default_n_ivf_probe(num_centroids: int) -> int:
    """Centroids probed per query token when ``n_ivf_probe`` is None.

    8, as PyLate; with the default codebook (``ivf.default_num_centroids``)
    it reached recall@10 >= 0.95 against exact MaxSim with 512 re-scored
    candidates on SciFact (docs/index_engine.md, "Choosing the defaults").
    """
    return int(max(1, min(num_centroids, 8)))


def default_n_full_scores(
    num_docs: int, k: int, nbits: int | None = None, token_stage: bool = False
) -> int:
    """Candidates re-scored exactly when ``n_full_scores`` is None.

    ``base * sqrt(num_docs / 5000)`` (the cube root for the token stage; at
    least ``8 * k``, at most every document): more documents compete for the
    same top 10 as the collection grows, and the root keeps the re-scoring
    cost growing slower than the collection. ``base`` is the smallest measured setting reaching
    recall@10 >= 0.95 against exact MaxSim on SciFact (>= 0.90 at 2 bits),
    with a margin (docs/index_engine.md, "Search stages"):

    * float16 vectors (``nbits`` None), candidates ranked by the probe: 512;
    * 4 bits, ranked by the token stage (``token_stage``: the CPU path): 256;
    * 4 bits, ranked by centroid codes (the torch path): 640;
    * 2 or 1 bits: 1,280 (coarser scores reorder more near-ties).
    """
    if nbits is None:
        base = 512
    elif nbits >= 4:
        base = 256 if token_stage else 640
    else:
        base = 1280
    # The token stage's ranking holds up as the collection grows: its 256 at
    # 5k documents needed ~2x (not ~3.2x) at 52k; the cube root, not the root.
    power = 1 / 3 if token_stage and nbits is not None and nbits >= 4 else 0.5
    scaled = round(base * (max(num_docs, 0) / 5000) ** power)
    return int(max(8 * k, min(num_docs, scaled)))


def default_n_centroid_scores(n_full_scores: int) -> int:
    """IVF candidates scored from their centroid codes when left to None.

    ``2 * n_full_scores``: on SciFact (4 bits) a pool of 1,024, 2,048 or
    4,096 gave the same recall@10 for 64 to 512 re-scored candidates, and
    the stage costs a gather per token of the pool (docs/index_engine.md).
    """
    return int(2 * n_full_scores)


def filter_probe_power(token_stage: bool) -> float:
    """Exponent ``e`` of a filtered search's probe widening, ``selectivity ** -e``.

    A filter keeping a share ``s`` of the documents leaves about ``s`` times
    fewer allowed documents in each probed list. When candidates are the
    documents of the probed lists (centroid codes: the torch path and
    float16 segments) the probe grows as ``1 / s`` (``e = 1``) to reach as
    many allowed documents. The token stage (the CPU path) reaches an
    allowed document through any one of its tokens in the probed lists and
    imputes the others, so the cube root (``e = 1/3``) keeps its recall
    while ``1 / s`` made a 10% filter slower than no filter
    (docs/documents.md, "Filtered search").
    """
    return 1 / 3 if token_stage else 1.0


def prefer_exact(num_tokens: int, rescored_tokens: int | None = None) -> bool:
    """Whether an exact scan of ``num_tokens`` vectors beats the IVF path.

    Below ~100k token vectors an exact scan does no more MaxSim work than
    the IVF path's re-scoring plus its probing (a collection of a few hundred
    documents). ``rescored_tokens``: for a filtered search, the tokens the
    IVF path would re-score fully (``n_full_scores`` times the mean document
    length); the scan of the allowed rows then has to stay below 1.5 times
    that, since the token stage skips the rows a filter excludes before
    decoding them and so costs about what an unfiltered query costs
    (measured in docs/documents.md, "Filtered search (SciFact 1x, ...)").
    """
    limit = 100_000
    if rescored_tokens is not None:
        limit = min(limit, int(1.5 * rescored_tokens))
    return num_tokens <= limit
