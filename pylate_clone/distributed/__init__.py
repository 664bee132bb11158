"""Scale-out: encode and index on a Ray cluster, search sharded indexes.

Needs the ``ray`` extra (``pip install 'pylate-clone[ray]'``); ``import
pylate_clone`` never imports Ray, only this package does.

* :func:`build_index`: Ray Data reads a corpus, an actor pool of model
  replicas encodes it, and the driver writes the index (or one index per
  shard) with the package's own atomic commits.
* :class:`ShardedIndex`: one Ray actor per shard; queries fanned out and the
  top-k merged; usable wherever an index is (``retrieve.ColBERT``, the
  command line, the server).
* :func:`shard_of`: the shard owning a document id (``crc32(str(id)) % S``).

Multi-GPU gathering for training lives in :mod:`pylate_clone.utils.distributed`.
"""

from ._cluster import import_ray

import_ray()  # a clear ImportError naming the extra, before anything else

from ._layout import ShardedLayoutError, is_sharded, shard_kind, shard_of  # noqa: E402
from .build import BuildError, build_index  # noqa: E402
from .sharded import ShardedIndex, ShardUnavailableError  # noqa: E402

__all__ = [
    "BuildError",
    "build_index",
    "is_sharded",
    "shard_kind",
    "shard_of",
    "ShardedIndex",
    "ShardedLayoutError",
    "ShardUnavailableError",
]
