"""Model cards in PyLate's format: :class:`PylateModelCardData` and its template."""

from .model_card import PylateModelCardData, get_versions

__all__ = ["PylateModelCardData", "get_versions"]
