__version__ = "0.1.0"
VERSION = tuple(int(p) for p in __version__.split("."))
