"""Stream encoded batches into one ``add_documents`` transaction per shard.

Each shard's index consumes a generator inside its own ``add_documents`` call
(one segment, one atomic commit). With several shards, every shard writes in
its own thread fed through a bounded queue, so the driver holds at most a few
batches whatever the collection size. An error anywhere (a lost worker, a bad
document, a full disk) makes every shard's generator raise, so every shard's
transaction is discarded and no shard commits a partial build.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from ._layout import shard_of

_QUEUE_DEPTH = 4  # batches waiting per shard: bounds the driver's memory
_POLL_S = 0.5


class _Abort(Exception):
    """Raised inside a shard's batch stream when the build is abandoned."""


_END = object()


class _Vote:
    """Every shard's stream must end cleanly before any shard commits.

    A shard whose generator reads the end of the stream waits here; it goes on
    to its commit only once every shard has done the same, and aborts if any
    shard failed meanwhile (a bad document found while writing one shard then
    discards the others' transactions too).
    """

    def __init__(self, voters: int) -> None:
        self._voters = voters
        self._ready = 0
        self._failed = False
        self._condition = threading.Condition()

    def ready(self) -> None:
        """Wait for every shard; raise ``_Abort`` if one failed."""
        with self._condition:
            self._ready += 1
            self._condition.notify_all()
            self._condition.wait_for(
                lambda: self._failed or self._ready >= self._voters
            )
            if self._failed:
                raise _Abort("another shard failed: nothing is committed")

    def fail(self) -> None:
        """Record a shard's failure and wake the shards waiting to commit."""
        with self._condition:
            self._failed = True
            self._condition.notify_all()


def write_single(index: Any, batches: Iterable[tuple[list, list]]) -> int:
    """Write every batch into ``index`` in one transaction; returns documents written."""
    count = 0

    def counted() -> Iterator[tuple[list, list]]:
        nonlocal count
        for ids, embeddings in batches:
            count += len(ids)
            yield ids, embeddings

    index.add_documents(counted())
    return count


class _ShardFeed:
    """One shard: its queue, its writer thread and how that thread ended."""

    def __init__(self, number: int, index: Any, vote: _Vote) -> None:
        self.number = number
        self.vote = vote
        self.index = index
        self.queue: queue.Queue = queue.Queue(maxsize=_QUEUE_DEPTH)
        self.error: BaseException | None = None
        self.count = 0
        self.stopped = False  # the driver's _END or abort was read
        self.thread = threading.Thread(
            target=self._run, name=f"shard-writer-{number}", daemon=True
        )

    def _batches(self) -> Iterator[tuple[list, list]]:
        while True:
            item = self.queue.get()
            if item is _END:
                self.stopped = True
                self.vote.ready()
                return
            if isinstance(item, BaseException):
                self.stopped = True
                raise item
            self.count += len(item[0])
            yield item

    def _run(self) -> None:
        stream = self._batches()
        try:
            first = next(stream, None)
            if first is None:
                return  # no document hashes to this shard: it stays empty

            def again() -> Iterator[tuple[list, list]]:
                yield first
                yield from stream

            self.index.add_documents(again())
        except BaseException as error:  # reported by the driver thread
            self.error = error
            self.vote.fail()
            # Drain until the driver's last word, so it never blocks on a
            # queue nobody reads.
            while not self.stopped:
                item = self.queue.get()
                self.stopped = item is _END or isinstance(item, BaseException)

    def put(self, item: Any) -> None:
        """Hand ``item`` to the writer, failing fast if the writer has died."""
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue


def write_sharded(
    shard_indexes: list[Any], batches: Iterable[tuple[list, list]]
) -> list[int]:
    """Route each document of ``batches`` to its shard and write all shards.

    Parameters
    ----------
    shard_indexes
        One opened index per shard; document ``d`` goes to
        ``shard_indexes[shard_of(d, len(shard_indexes))]``.
    batches
        ``(ids, embeddings)`` pairs, in collection order.

    Returns
    -------
    list[int]
        Documents written per shard.

    Raises
    ------
    BaseException
        The first error of the stream or of a shard's write; no shard has then
        committed anything from this call (the exception: a failure after
        every shard's stream ended, e.g. a disk filling up during one shard's
        final commit while another shard's commit succeeds).
    """
    vote = _Vote(len(shard_indexes))
    feeds = [_ShardFeed(n, index, vote) for n, index in enumerate(shard_indexes)]
    for feed in feeds:
        feed.thread.start()
    shards = len(feeds)
    try:
        for ids, embeddings in batches:
            parts: list[tuple[list, list]] = [([], []) for _ in feeds]
            for document_id, matrix in zip(ids, embeddings):
                part = parts[shard_of(document_id, shards)]
                part[0].append(document_id)
                part[1].append(matrix)
            for feed, part in zip(feeds, parts):
                if part[0]:
                    feed.put(part)
        # The stream is complete: each shard now commits its transaction.
        for feed in feeds:
            feed.put(_END)
    except BaseException as error:
        # Every writer still reading (or draining after its own error) stops
        # on this; one that already returned leaves it unread in its queue.
        for feed in feeds:
            if feed.thread.is_alive():
                feed.queue.put(_Abort(f"build abandoned: {error}"))
        for feed in feeds:
            feed.thread.join()
        raise
    for feed in feeds:
        feed.thread.join()
    errors = [f.error for f in feeds if f.error is not None]
    # The cause, not the aborts it set off in the other shards.
    causes = [e for e in errors if not isinstance(e, _Abort)] or errors
    if causes:
        raise causes[0]
    return [feed.count for feed in feeds]
