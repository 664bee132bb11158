"""``python -m pylate_clone.cli``: the ``pylate-clone`` command."""

from . import console_main

if __name__ == "__main__":
    console_main()
