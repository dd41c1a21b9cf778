"""What reading or publishing a contract event can fail with: one hierarchy, so an inbox can
dead-letter any of them with ``str(error)`` as the reason."""

from __future__ import annotations

from pydantic import ValidationError


class ContractError(Exception):
    """Base of every contract failure."""


class UnknownEventType(ContractError):
    def __init__(self, event_type: str) -> None:
        super().__init__(f"unknown event type {event_type!r}")
        self.event_type = event_type


class UnknownEventVersion(ContractError):
    def __init__(self, event_type: str, version: int, known: list[int]) -> None:
        super().__init__(f"unknown version {version} of {event_type} (known: {known})")
        self.event_type = event_type
        self.version = version


class InvalidEventData(ContractError):
    """The data does not satisfy the schema of (type, version)."""

    def __init__(self, event_type: str, version: int, error: ValidationError) -> None:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in detail['loc']) or '<root>'}: {detail['msg']}"
            for detail in error.errors(include_url=False)
        )
        super().__init__(f"invalid {event_type} v{version}: {problems}")
        self.event_type = event_type
        self.version = version
        self.errors = error.errors(include_url=False, include_context=False)


class UpcastFailed(ContractError):
    """An upcaster raised: a bug in the upcaster or a payload it did not foresee."""

    def __init__(self, event_type: str, from_version: int, cause: Exception) -> None:
        super().__init__(f"upcasting {event_type} v{from_version} to v{from_version + 1} failed: {cause!r}")
        self.event_type = event_type
        self.from_version = from_version
