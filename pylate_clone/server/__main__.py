"""``python -m pylate_clone.server``: PyLate 1.6's ``server.py``, with its flags.

``--host`` (default 0.0.0.0), ``--port`` (8002) and ``--model``
(lightonai/GTE-ModernColBERT-v1) behave as in PyLate; the other flags of
``pylate-clone serve`` (``--index``, ``--api-key``, limits) are accepted too.
The parser and entry point live in :mod:`pylate_clone.server.server`.
"""

from __future__ import annotations

import sys

from .server import main

if __name__ == "__main__":
    sys.exit(main())
