"""Micro-batching of concurrent encode requests onto one model thread.

Every request that needs embeddings (``/v1/embeddings``, the queries of
``/v1/search``, the texts of ``/v1/rerank`` and ``/v1/documents``) awaits
:meth:`MicroBatcher.encode`. A single consumer task takes the first waiting
request, keeps collecting for ``wait_ms`` milliseconds or until
``max_texts`` texts are gathered, then encodes queries and documents in one
``model.encode`` call each and hands every request its own slice.

All encoding happens on ONE worker thread: a fast (Rust) tokenizer raises
"Already borrowed" when two threads use it at once, and a CPU model gains
nothing from running forward passes in parallel. While that thread encodes,
new requests queue up and form the next batch, so the batch size follows the
load without any tuning.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

EncodeFunction = Callable[[list[str], bool], Sequence[Any]]


@dataclass
class _Job:
    texts: list[str]
    is_query: bool
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Collect concurrent encode requests and run them as one batch.

    Parameters
    ----------
    encode
        ``encode(texts, is_query)`` returning one embedding (a ``(n_tokens,
        dim)`` array) per text, in order. Called only from the worker thread.
    max_texts
        Texts gathered before a batch is closed early. A single request
        larger than this is still encoded whole.
    wait_ms
        How long the first request of a batch waits for others to join.
    """

    def __init__(
        self, encode: EncodeFunction, max_texts: int = 256, wait_ms: float = 5.0
    ) -> None:
        if max_texts < 1:
            raise ValueError(f"max_texts must be at least 1, got {max_texts}.")
        if wait_ms < 0:
            raise ValueError(f"wait_ms must be >= 0, got {wait_ms}.")
        self._encode = encode
        self.max_texts = int(max_texts)
        self.wait_s = float(wait_ms) / 1000.0
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.batches = 0  # number of encode calls made, for tests and metrics

    async def start(self) -> None:
        """Start the consumer task and the worker thread (inside a running loop)."""
        if self._task is not None:
            return
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="pylate-clone-encode"
        )
        self._task = asyncio.get_running_loop().create_task(self._consume())

    async def stop(self) -> None:
        """Stop consuming, fail waiting requests and release the worker thread."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        while self._queue is not None and not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(RuntimeError("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def encode(self, texts: list[str], is_query: bool) -> list[Any]:
        """Embeddings of ``texts``, encoded together with concurrent requests.

        Parameters
        ----------
        texts
            Texts of this request (at least one).
        is_query
            Encode as queries (True) or documents (False).

        Returns
        -------
        list
            One ``(n_tokens, dim)`` array per text, in order.
        """
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() has not been awaited.")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(list(texts), bool(is_query), future))
        return await future

    async def _gather(self) -> list[_Job]:
        """One batch: the first waiting job plus those arriving within the window."""
        assert self._queue is not None
        batch = [await self._queue.get()]
        count = len(batch[0].texts)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while count < self.max_texts:
            # Jobs that queued up while the last batch was encoding join at once.
            if not self._queue.empty():
                job = self._queue.get_nowait()
            else:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            batch.append(job)
            count += len(job.texts)
        return batch

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            for is_query in (True, False):
                jobs = [
                    job
                    for job in batch
                    if job.is_query == is_query and not job.future.done()
                ]
                if not jobs:
                    continue
                texts = [text for job in jobs for text in job.texts]
                try:
                    embeddings = await loop.run_in_executor(
                        self._executor, self._encode, texts, is_query
                    )
                except Exception as error:  # handed to the requests that asked
                    for job in jobs:
                        if not job.future.done():
                            job.future.set_exception(error)
                    continue
                self.batches += 1
                start = 0
                for job in jobs:
                    end = start + len(job.texts)
                    if not job.future.done():  # the client may have gone away
                        job.future.set_result(list(embeddings[start:end]))
                    start = end
