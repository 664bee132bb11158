"""Thread settings for small CPU operations.

torch's intra-op pool and numpy's BLAS pool are separate sets of threads. On
a machine with few cores, a small matmul split across either pool after the
other has run can wait on descheduled or spinning threads for tens of times
its own cost. Small per-query products are therefore run on one torch
thread, which keeps their cost at the matmul itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_lock = threading.Lock()
_users = 0
_saved = 1


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Hold torch's (process-wide) intra-op pool at one thread for a block.

    Re-entrant and safe across threads: the first caller saves the setting and
    the last one to leave restores it.
    """
    global _users, _saved
    with _lock:
        if _users == 0:
            _saved = torch.get_num_threads()
            torch.set_num_threads(1)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                torch.set_num_threads(_saved)


def outer_num_threads() -> int:
    """torch's thread count outside every :func:`one_torch_thread` block."""
    with _lock:
        return _saved if _users else torch.get_num_threads()
