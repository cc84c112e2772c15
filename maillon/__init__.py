"""Maillon: regional health-coordination platform on Matrix (shared code and CLI)."""

__version__ = "0.1.0"
