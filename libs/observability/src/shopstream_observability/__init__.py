"""Logging and metrics shared by every Shopstream process."""

from .logging import configure_logging, event_context, get_logger

__all__ = ["configure_logging", "event_context", "get_logger"]
