"""Child processes forked from a fork server that has imported the package once.

Tests that run writers, readers or crashing writes in other processes use
:data:`FORKSERVER` instead of a fresh interpreter per process: a new
interpreter imports torch and pylate_clone again (seconds each on a small
machine), a child of the fork server starts in milliseconds. The server only
imports, it computes nothing, so forking it is safe with torch's thread pools.
"""

from __future__ import annotations

import multiprocessing

FORKSERVER = multiprocessing.get_context("forkserver")
# One list for every test module: the server is started once per session.
FORKSERVER.set_forkserver_preload(["pylate_clone.retrieve", "tests.test_indexes"])
