"""Lantern: a self-hostable connectivity platform for digital health."""

__version__ = "0.1.0"
