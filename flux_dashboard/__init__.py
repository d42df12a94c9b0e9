"""Flux dashboard: flow analytics for Serenicity network sensors."""

__version__ = "0.1.0"
