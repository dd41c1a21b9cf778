"""The shape of every service's domain: pure deciders over contract (and internal) events.

A decider is three pure functions. ``decide(command, state)`` returns the events a command
causes or raises a ``DomainError`` saying why it is refused; ``evolve(state, event)`` folds one
event into the state; ``initial_state()`` is the state of a stream with no event. Nothing in a
decider reads a clock, generates an id or does I/O: times and ids arrive inside the command.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from shopstream_contracts import Event


class InternalEvent(BaseModel):
    """An event a service stores but never publishes (its own bookkeeping). It has a stable
    name like a contract event (``shopstream.<service>.internal.<Name>``), never a class path."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type_name: ClassVar[str]
    version: ClassVar[int] = 1

    def to_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


DomainEvent = Event | InternalEvent

S = TypeVar("S")
C = TypeVar("C", contravariant=True)


class Decider(Protocol[S, C]):
    def initial_state(self) -> S: ...

    def evolve(self, state: S, event: DomainEvent) -> S: ...

    def decide(self, command: C, state: S) -> Sequence[DomainEvent]: ...


class DomainError(Exception):
    """A command refused by a business rule. HTTP answers ``status`` with ``code`` and the
    message (and the offending ``field`` when one input is to blame); nothing is written."""

    status = 409

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class NotFound(DomainError):
    status = 404


class Forbidden(DomainError):
    """Authenticated, but not allowed to do this to this resource (e.g. not a host of the live)."""

    status = 403


class Invalid(DomainError):
    """The request is well-formed but a value is unacceptable (a quantity above the cap...)."""

    status = 422


def fold(decider: Decider[S, Any], events: Sequence[DomainEvent]) -> S:
    state = decider.initial_state()
    for event in events:
        state = decider.evolve(state, event)
    return state
