"""An asyncio readers-writer lock: searches share the index, writes own it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class ReadWriteLock:
    """Many readers or one writer; a waiting writer blocks new readers.

    Searches hold the read side while the index is queried, so they run
    concurrently with each other; an add or a removal holds the write side,
    so a search never observes an index half-way through a write (the index
    object's in-memory state changes at commit time). Writers are preferred
    so that a stream of searches cannot starve them.
    """

    def __init__(self) -> None:
        self._condition = asyncio.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[None]:
        """Hold the read side for the duration of the block."""
        async with self._condition:
            await self._condition.wait_for(
                lambda: not self._writer and self._writers_waiting == 0
            )
            self._readers += 1
        try:
            yield
        finally:
            async with self._condition:
                self._readers -= 1
                self._condition.notify_all()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[None]:
        """Hold the write side (exclusive) for the duration of the block."""
        async with self._condition:
            self._writers_waiting += 1
            try:
                await self._condition.wait_for(
                    lambda: not self._writer and self._readers == 0
                )
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            async with self._condition:
                self._writer = False
                self._condition.notify_all()
