"""Test-only failure hooks: the storage layer calls them, only tests set them.

Never set in normal use:

* ``PYLATE_CLONE_TEST_CRASH_AT=<name>``: the process SIGKILLs itself when it
  reaches :func:`crash_point` ``(name)`` (the crash-safety tests kill a real
  subprocess at every commit step this way).
* ``PYLATE_CLONE_TEST_FAULT=<ERRNO>:<n>`` (or :func:`simulate_fault`): the
  ``n``-th file written through ``commit.open_for_write`` from then on fails
  with ``OSError(ERRNO)`` (``ENOSPC``, ``EACCES``, ``EROFS``...), as a full
  disk, a permission change or a read-only remount would part-way through a
  commit.
"""

from __future__ import annotations

import contextlib
import errno as errno_module
import os
import signal
from collections.abc import Iterator
from pathlib import Path

CRASH_ENV = "PYLATE_CLONE_TEST_CRASH_AT"
FAULT_ENV = "PYLATE_CLONE_TEST_FAULT"

_fault: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Kill the current process with SIGKILL if the test hook names ``name``."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def simulate_fault(error: str, nth: int = 1) -> Iterator[None]:
    """Test hook: make the ``nth`` file write inside the block fail with ``error``.

    Parameters
    ----------
    error
        An errno name such as ``"ENOSPC"``, ``"EACCES"`` or ``"EROFS"``.
    nth
        Which write fails (1 = the first).
    """
    _fault.clear()
    _fault.update(code=getattr(errno_module, error), left=nth)
    try:
        yield
    finally:
        _fault.clear()


def maybe_fail(path: Path) -> None:
    """Raise the armed ``OSError`` if this write is the one chosen to fail."""
    if not _fault and os.environ.get(FAULT_ENV):
        name, _, nth = os.environ[FAULT_ENV].partition(":")
        _fault.update(code=getattr(errno_module, name), left=int(nth or 1))
        os.environ.pop(FAULT_ENV)
    if not _fault:
        return
    _fault["left"] -= 1
    if _fault["left"] == 0:
        code = _fault.pop("code")
        _fault.clear()
        raise OSError(code, os.strerror(code), str(path))
