"""Placeholder: filled by the retrieve work."""
