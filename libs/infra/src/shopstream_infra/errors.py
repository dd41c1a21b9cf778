"""Errors raised by the local-infrastructure helpers."""


class InfraError(RuntimeError):
    """Local infrastructure could not be fetched, started or stopped; the message says why."""
