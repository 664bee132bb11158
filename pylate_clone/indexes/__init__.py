"""Placeholder: filled by the indexes work."""
