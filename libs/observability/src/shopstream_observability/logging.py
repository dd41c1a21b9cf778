"""structlog JSON logs with the ids that let one follow a sale across services.

Every log line emitted while an event or command is handled carries ``event_id``,
``correlation_id`` and ``causation_id`` through structlog's context variables, so the ids are
bound once where the work starts, not passed into every call.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import structlog


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at the moment of writing, not at configuration: a CLI command
    run in-process (typer's CliRunner, a test) swaps stderr for a buffer it closes afterwards,
    and loggers bound to that buffer would fail on every later line."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_STDERR: TextIO = _CurrentStderr()  # type: ignore[assignment]


def configure_logging(service: str, level: str = "INFO", *, json: bool = True) -> None:
    """Configure structlog and the standard library (third-party loggers) to print one JSON
    object per line on stderr."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(_STDERR),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(_STDERR)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


@contextmanager
def event_context(
    event_id: str | None, correlation_id: str | None, causation_id: str | None, **extra: Any
) -> Iterator[None]:
    """Bind the ids of the event (or command) being handled for every log line inside."""
    with structlog.contextvars.bound_contextvars(
        event_id=event_id, correlation_id=correlation_id, causation_id=causation_id, **extra
    ):
        yield


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
