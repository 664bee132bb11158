"""Placeholder: filled by the losses work."""
