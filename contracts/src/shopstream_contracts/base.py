"""Building blocks of every contract event: the strict/tolerant base model, money, time and ids.

Every model is frozen and declared with ``extra="forbid"``, which is what producers get: a
constructor call or :meth:`Event.validate_for_publish` rejects any unknown field, at any depth.
Readers go through :meth:`Event.read` (or ``Registry.decode``), which overrides that per call
with ``extra="ignore"``, so a newer producer's additional optional fields never break an older
consumer. The two entry points are separate on purpose: the same payload must never be checked
loosely on the way out or rejected for an unknown field on the way in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
)

from shopstream_contracts.errors import InvalidEventData

_SERVICE = re.compile(r"^[a-z][a-z0-9]*$")
_EVENT_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")

# JavaScript and many JSON libraries lose precision beyond 2**53 - 1; amounts and counters stay
# inside that range so every consumer reads the exact number.
JSON_SAFE_INT = 2**53 - 1


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDateTime = Annotated[AwareDatetime, AfterValidator(_as_utc)]
"""A timezone-aware instant, normalised to UTC; naive datetimes are rejected."""

Id = Annotated[str, StringConstraints(pattern=r"^[!-~]{1,128}$")]
"""An opaque identifier (a UUID, a slug, a token subject): 1-128 printable ASCII characters,
no spaces, so that it is safe as a Kafka key, a URL segment and a log field."""

CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
MarketCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
"""ISO-3166-1 alpha-2 country code of a market (BR, US, PT)."""

Title = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=5000)]

OccurredAt = Annotated[
    UtcDateTime,
    Field(description="When it happened (UTC), by the producing service's clock."),
]
LiveOffsetMs = Annotated[
    StrictInt,
    Field(
        ge=0,
        le=JSON_SAFE_INT,
        description="Milliseconds since the live started (its LiveStarted), so the live's "
        "timeline can be replayed.",
    ),
]
Count = Annotated[StrictInt, Field(ge=0, le=JSON_SAFE_INT)]
PositiveCount = Annotated[StrictInt, Field(ge=1, le=JSON_SAFE_INT)]
BasisPoints = Annotated[StrictInt, Field(ge=0, le=10_000)]
"""1/100 of a percent: 1250 bps = 12.5 %."""


class ContractModel(BaseModel):
    """Base of every contract model: immutable, strict about unknown fields unless read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Money(ContractModel):
    """An amount in the currency's minor units (cents, centavos, yen), never a float:
    ``{"amount": 12990, "currency": "BRL"}`` is R$ 129,90."""

    amount: StrictInt = Field(
        ge=-JSON_SAFE_INT,
        le=JSON_SAFE_INT,
        description="Integer amount in minor units of `currency`; the sign is given by the field "
        "that holds it (prices and totals are never negative).",
    )
    currency: CurrencyCode = Field(description="ISO-4217 alphabetic code, upper case (BRL, USD, EUR).")


@dataclass(frozen=True, slots=True)
class Topic:
    """A Kafka topic: one per producing service and aggregate, stable across event versions.

    Every event on a topic is keyed by the same field (the aggregate id), so Kafka keeps
    the per-aggregate order end to end.
    """

    service: str
    aggregate: str
    key: str
    """Name of the data field whose value is the Kafka key and the CloudEvents subject."""
    description: str

    def __post_init__(self) -> None:
        if not (_SERVICE.match(self.service) and _SERVICE.match(self.aggregate)):
            raise ValueError(f"service and aggregate must be lower-case words: {self!r}")

    @property
    def name(self) -> str:
        return f"shopstream.{self.service}.{self.aggregate}"

    @property
    def source(self) -> str:
        """The CloudEvents ``source`` of every event the owning service publishes."""
        return f"/shopstream/{self.service}"


@dataclass(frozen=True, slots=True)
class EventContract:
    """The stable public identity of an event model: its type name, data version and topic."""

    type: str
    version: int
    topic: Topic

    def __post_init__(self) -> None:
        prefix, _, name = self.type.rpartition(".")
        if prefix != f"shopstream.{self.topic.service}" or not _EVENT_NAME.match(name):
            raise ValueError(
                f"event type {self.type!r} must be 'shopstream.{self.topic.service}.<EventName>'"
            )
        if self.version < 1:
            raise ValueError(f"{self.type}: versions start at 1, got {self.version}")


class Event(ContractModel):
    """Base of every public event. Subclasses set ``contract``."""

    contract: ClassVar[EventContract]

    @classmethod
    def validate_for_publish(cls, data: Mapping[str, Any]) -> Self:
        """Producer side: unknown fields anywhere are an error."""
        return cls._validate(data, "forbid")

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> Self:
        """Consumer side, this exact version: unknown fields anywhere are ignored."""
        return cls._validate(data, "ignore")

    @classmethod
    def _validate(cls, data: Mapping[str, Any], extra: Literal["forbid", "ignore"]) -> Self:
        # The per-call ``extra`` (pydantic >= 2.13) reaches nested models too, so one set of models
        # serves both sides instead of a strict and a tolerant copy of every class.
        try:
            return cls.model_validate(data, extra=extra)
        except ValidationError as error:
            raise InvalidEventData(cls.contract.type, cls.contract.version, error) from None

    def to_data(self) -> dict[str, Any]:
        """The JSON-ready ``data`` of the CloudEvent (times as ISO-8601 with ``Z``)."""
        return self.model_dump(mode="json")

    @property
    def aggregate_id(self) -> str:
        """The Kafka key and CloudEvents subject: the value of the topic's key field."""
        value: str = getattr(self, self.contract.topic.key)
        return value
