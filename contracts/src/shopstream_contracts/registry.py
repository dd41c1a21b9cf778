"""Maps (type, version) to models and types to topics; upcasts old versions on read.

A breaking change to an event is a new model with ``version = N + 1`` plus an upcaster that
turns a vN payload into a vN+1 payload. Readers always get the latest version: ``decode``
reads the payload tolerantly at its own version (so the upcaster receives a well-formed vN
payload with its defaults filled in), applies vN⇒vN+1⇒…⇒latest, and reads the result
tolerantly as the latest model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shopstream_contracts.base import Event, EventContract, Topic
from shopstream_contracts.errors import UnknownEventType, UnknownEventVersion, UpcastFailed

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns the JSON data of version N into the JSON data of version N+1."""


class Registry:
    """The catalogue of event models and upcasters. Build it once, then ``verify`` it."""

    def __init__(self) -> None:
        self._models: dict[str, dict[int, type[Event]]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, *models: type[Event]) -> None:
        for model in models:
            contract = model.contract
            key = contract.topic.key
            field = model.model_fields.get(key)
            if field is None or field.annotation is not str or not field.is_required():
                raise ValueError(
                    f"{contract.type} v{contract.version}: key field {key!r} must be a required str"
                )
            versions = self._models.setdefault(contract.type, {})
            if contract.version in versions:
                raise ValueError(f"{contract.type} v{contract.version} is already registered")
            for other in versions.values():
                if other.contract.topic != contract.topic:
                    raise ValueError(
                        f"{contract.type}: every version must use one topic, "
                        f"{other.contract.topic.name} != {contract.topic.name}"
                    )
            versions[contract.version] = model

    def register_upcaster(self, event_type: str, from_version: int, upcaster: Upcaster) -> None:
        if (event_type, from_version) in self._upcasters:
            raise ValueError(f"{event_type}: an upcaster from v{from_version} is already registered")
        self._upcasters[(event_type, from_version)] = upcaster

    def verify(self) -> None:
        """Every type has versions 1..N and exactly the upcasters 1⇒2 … N-1⇒N."""
        expected: set[tuple[str, int]] = set()
        for event_type, versions in self._models.items():
            latest = max(versions)
            if sorted(versions) != list(range(1, latest + 1)):
                raise ValueError(f"{event_type}: versions must be 1..{latest}, got {sorted(versions)}")
            expected.update((event_type, version) for version in range(1, latest))
        missing = sorted(expected - self._upcasters.keys())
        stray = sorted(self._upcasters.keys() - expected)
        if missing or stray:
            raise ValueError(f"upcasters missing for {missing}, without a target version for {stray}")

    def types(self) -> list[str]:
        return sorted(self._models)

    def contracts(self) -> list[EventContract]:
        """Every registered (type, version), sorted by type then version."""
        return [self._models[t][v].contract for t in self.types() for v in sorted(self._models[t])]

    def topics(self) -> list[Topic]:
        """Every topic with at least one event type, sorted by name."""
        unique = {model.contract.topic for versions in self._models.values() for model in versions.values()}
        return sorted(unique, key=lambda topic: topic.name)

    def model(self, event_type: str, version: int) -> type[Event]:
        versions = self._versions(event_type)
        model = versions.get(version)
        if model is None:
            raise UnknownEventVersion(event_type, version, sorted(versions))
        return model

    def latest(self, event_type: str) -> type[Event]:
        versions = self._versions(event_type)
        return versions[max(versions)]

    def topic(self, event_type: str) -> Topic:
        return self.latest(event_type).contract.topic

    def validate_for_publish(self, event_type: str, version: int, data: Mapping[str, Any]) -> Event:
        """Producer side: check data strictly against exactly (type, version); no upcasting."""
        return self.model(event_type, version).validate_for_publish(data)

    def decode(self, event_type: str, version: int, data: Mapping[str, Any]) -> Event:
        """Consumer side: read data of any known version tolerantly, upcast to the latest."""
        event = self.model(event_type, version).read(data)
        latest = self.latest(event_type)
        if version == latest.contract.version:
            return event
        payload = event.to_data()
        for from_version in range(version, latest.contract.version):
            try:
                payload = self._upcasters[(event_type, from_version)](payload)
            except Exception as error:
                raise UpcastFailed(event_type, from_version, error) from error
        return latest.read(payload)

    def _versions(self, event_type: str) -> dict[int, type[Event]]:
        versions = self._models.get(event_type)
        if versions is None:
            raise UnknownEventType(event_type)
        return versions
