"""Tutti: an open-source, self-hostable AI-first communication cloud for consumer brands."""

__version__ = "0.1.0.dev0"
