"""CloudEvents 1.0 on Kafka, binary content mode: attributes in headers, JSON data as the value.

Headers: ``ce_id``, ``ce_source``, ``ce_type``, ``ce_specversion``, ``ce_time``, ``ce_subject``,
``content-type``, ``dataversion`` and, when present, ``correlationid`` and ``causationid``.
The Kafka key is the aggregate id.

This sits on the hot path of the relay and of every inbox, so it is plain code: no pydantic,
one orjson call per direction. ``decode`` accepts what either Kafka client hands out (headers as
a list of pairs or a mapping, values as bytes or str) and raises only ``UndecodableMessage``,
whose reason says exactly what is wrong, so a consumer can dead-letter with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

SPECVERSION = "1.0"
JSON_CONTENT_TYPE = "application/json"

_ID = "ce_id"
_SOURCE = "ce_source"
_TYPE = "ce_type"
_SPECVERSION = "ce_specversion"
_TIME = "ce_time"
_SUBJECT = "ce_subject"
_CONTENT_TYPE = "content-type"
_DATAVERSION = "dataversion"
_CORRELATIONID = "correlationid"
_CAUSATIONID = "causationid"
_KNOWN = frozenset(
    (
        _ID,
        _SOURCE,
        _TYPE,
        _SPECVERSION,
        _TIME,
        _SUBJECT,
        _CONTENT_TYPE,
        _DATAVERSION,
        _CORRELATIONID,
        _CAUSATIONID,
    )
)

HeaderValue = bytes | str | None
Headers = Sequence[tuple[str, HeaderValue]] | Mapping[str, HeaderValue]


class UndecodableMessage(Exception):
    """The Kafka message is not a CloudEvent this codec can read; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class CloudEvent:
    """One event as it travels on Kafka. ``data`` is the JSON object of the contract event."""

    id: str
    source: str
    type: str
    time: datetime
    """Timezone-aware; encoded in UTC."""
    subject: str
    data: dict[str, Any]
    dataversion: int
    key: str
    """The Kafka key: the aggregate id (normally equal to ``subject``)."""
    correlationid: str | None = None
    causationid: str | None = None
    specversion: str = SPECVERSION
    datacontenttype: str = JSON_CONTENT_TYPE

    def __post_init__(self) -> None:
        if self.time.utcoffset() is None:
            raise ValueError(f"CloudEvent {self.id}: time must be timezone-aware, got {self.time!r}")


def encode(event: CloudEvent) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Return the Kafka (key, value, headers) of an event."""
    headers = HeaderEncoder(
        event.source, event.type, event.dataversion, event.specversion, event.datacontenttype
    )(event.id, _format_time(event.time), event.subject, event.correlationid, event.causationid)
    return event.key.encode(), orjson.dumps(event.data), headers


class HeaderEncoder:
    """The headers of every event of one (source, type, dataversion): the attributes they share
    are encoded once, so a relay that keeps one per type encodes only what differs per event."""

    __slots__ = ("_content_type", "_dataversion", "_source", "_specversion", "_type")

    def __init__(
        self,
        source: str,
        event_type: str,
        dataversion: int,
        specversion: str = SPECVERSION,
        datacontenttype: str = JSON_CONTENT_TYPE,
    ) -> None:
        self._source = (_SOURCE, source.encode())
        self._type = (_TYPE, event_type.encode())
        self._specversion = (_SPECVERSION, specversion.encode())
        self._content_type = (_CONTENT_TYPE, datacontenttype.encode())
        self._dataversion = (_DATAVERSION, str(dataversion).encode())

    def __call__(
        self,
        event_id: str,
        time: str,
        subject: str,
        correlationid: str | None,
        causationid: str | None,
    ) -> list[tuple[str, bytes]]:
        """``time`` is already in its wire form (see ``wire_time``)."""
        headers = [
            (_ID, event_id.encode()),
            self._source,
            self._type,
            self._specversion,
            (_TIME, time.encode()),
            (_SUBJECT, subject.encode()),
            self._content_type,
            self._dataversion,
        ]
        if correlationid is not None:
            headers.append((_CORRELATIONID, correlationid.encode()))
        if causationid is not None:
            headers.append((_CAUSATIONID, causationid.encode()))
        return headers


def wire_time(iso: str) -> str:
    """The ``ce_time`` of an ISO 8601 timestamp with an offset, as ``encode`` writes it (UTC, ``Z``).

    Stored times are normally UTC already: those are rewritten without parsing.
    """
    if iso.endswith("+00:00"):
        return iso[:-6] + "Z"
    return _format_time(datetime.fromisoformat(iso))


def decode(key: bytes | str | None, value: bytes | str | None, headers: Headers | None) -> CloudEvent:
    """Read a Kafka message back into a CloudEvent, or raise ``UndecodableMessage``."""
    fields = _header_fields(headers)
    event_id = _required(fields, _ID)
    specversion = _required(fields, _SPECVERSION)
    if specversion != SPECVERSION:
        raise UndecodableMessage(f"unsupported ce_specversion {specversion!r} (expected {SPECVERSION!r})")
    content_type = _required(fields, _CONTENT_TYPE)
    if content_type.partition(";")[0].strip().lower() != JSON_CONTENT_TYPE:
        raise UndecodableMessage(
            f"unsupported content-type {content_type!r} (expected {JSON_CONTENT_TYPE!r})"
        )
    return CloudEvent(
        id=event_id,
        source=_required(fields, _SOURCE),
        type=_required(fields, _TYPE),
        specversion=specversion,
        time=_parse_time(_required(fields, _TIME)),
        subject=_required(fields, _SUBJECT),
        datacontenttype=JSON_CONTENT_TYPE,
        data=_parse_data(value),
        dataversion=_parse_dataversion(_required(fields, _DATAVERSION)),
        correlationid=fields.get(_CORRELATIONID) or None,
        causationid=fields.get(_CAUSATIONID) or None,
        key=_key(key),
    )


def _required(fields: dict[str, str], name: str) -> str:
    text = fields.get(name)
    if text is None:
        raise UndecodableMessage(f"missing header {name}")
    if not text:
        raise UndecodableMessage(f"empty header {name}")
    return text


def _key(raw: bytes | str | None) -> str:
    key = _text("key", raw)
    if not key:
        raise UndecodableMessage("empty key")
    return key


def _header_fields(headers: Headers | None) -> dict[str, str]:
    if headers is None:
        raise UndecodableMessage("message has no headers")
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    fields: dict[str, str] = {}
    for name, raw in pairs:
        if name not in _KNOWN or raw is None:
            continue
        if name in fields:
            raise UndecodableMessage(f"duplicate header {name}")
        fields[name] = _text(f"header {name}", raw)
    return fields


def _text(what: str, raw: bytes | str | None) -> str:
    if isinstance(raw, str):
        return raw
    if raw is None:
        raise UndecodableMessage(f"missing {what}")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise UndecodableMessage(f"{what} is not valid UTF-8") from None


def _format_time(moment: datetime) -> str:
    text = moment.astimezone(UTC).isoformat()
    return text[:-6] + "Z"


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UndecodableMessage(f"ce_time {text!r} is not an RFC 3339 timestamp") from None
    if moment.utcoffset() is None:
        raise UndecodableMessage(f"ce_time {text!r} has no UTC offset")
    return moment.astimezone(UTC)


def _parse_dataversion(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise UndecodableMessage(f"dataversion {text!r} is not a positive integer")
    return int(text)


def _parse_data(value: bytes | str | None) -> dict[str, Any]:
    if value is None:
        raise UndecodableMessage("value is empty (a tombstone), expected a JSON object")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise UndecodableMessage(f"value is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise UndecodableMessage(f"value is JSON {type(data).__name__}, expected a JSON object")
    return data
