"""Reads Shopstream events with nothing but confluent-kafka and jsonschema (no Shopstream code).

    python plain_consumer.py --bootstrap 127.0.0.1:9092 --group my-team \\
        --schemas contracts/schemas shopstream.orders.order shopstream.catalog.stock

For each message it reads the CloudEvents headers, validates the JSON value against
``<schemas>/<ce_type>/v<dataversion>.json``, drops duplicates by ``ce_id`` and prints one JSON
line on stdout. A message it cannot read is reported on stderr and skipped; a production
consumer would put it on its own dead-letter topic instead. The offset is committed only after
the event was handled (here: printed), so nothing is lost: delivery is at-least-once, and the
``ce_id`` check turns it into exactly-once output. The set of seen ids lives in memory here; a
real consumer stores them durably, in the same transaction as its effect.

It stops after ``--max-events`` printed events or ``--idle-timeout`` seconds without a message.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message
from jsonschema import Draft202012Validator

REQUIRED_HEADERS = (
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_specversion",
    "ce_time",
    "ce_subject",
    "content-type",
    "dataversion",
)


class Unreadable(Exception):
    """The message is not a Shopstream event this consumer can read."""


class Schemas:
    """JSON Schema validators loaded on first use from the published schema folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.validators: dict[tuple[str, str], Draft202012Validator] = {}

    def validator(self, event_type: str, version: str) -> Draft202012Validator:
        key = (event_type, version)
        if key not in self.validators:
            path = self.root / event_type / f"v{version}.json"
            if not path.is_file():
                raise Unreadable(f"no schema {path}: update your copy of contracts/schemas")
            self.validators[key] = Draft202012Validator(json.loads(path.read_text(encoding="utf-8")))
        return self.validators[key]


def read_event(message: Message, schemas: Schemas) -> dict[str, Any]:
    headers = {name: value.decode("utf-8") for name, value in message.headers() or [] if value is not None}
    missing = [name for name in REQUIRED_HEADERS if name not in headers]
    if missing:
        raise Unreadable(f"missing headers {missing}")
    if headers["ce_specversion"] != "1.0":
        raise Unreadable(f"unsupported CloudEvents version {headers['ce_specversion']!r}")
    if headers["content-type"] != "application/json":
        raise Unreadable(f"unsupported content-type {headers['content-type']!r}")
    try:
        data = json.loads(message.value() or b"")
    except ValueError as error:
        raise Unreadable(f"value is not JSON: {error}") from None
    errors = sorted(
        schemas.validator(headers["ce_type"], headers["dataversion"]).iter_errors(data),
        key=lambda error: list(map(str, error.absolute_path)),
    )
    if errors:
        where = "/".join(map(str, errors[0].absolute_path)) or "<root>"
        raise Unreadable(
            f"{headers['ce_type']} v{headers['dataversion']} invalid at {where}: {errors[0].message}"
        )
    key = message.key()
    return {
        "id": headers["ce_id"],
        "type": headers["ce_type"],
        "dataversion": int(headers["dataversion"]),
        "source": headers["ce_source"],
        "subject": headers["ce_subject"],
        "time": headers["ce_time"],
        "correlationid": headers.get("correlationid"),
        "causationid": headers.get("causationid"),
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "key": key.decode("utf-8") if isinstance(key, bytes) else key,
        "data": data,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Print Shopstream events as JSON lines, validated and deduplicated."
    )
    parser.add_argument("topics", nargs="+", help="topics to subscribe to, e.g. shopstream.orders.order")
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, host:port[,host:port]")
    parser.add_argument(
        "--group", required=True, help="consumer group id; a new group starts from the earliest event"
    )
    parser.add_argument("--schemas", type=Path, required=True, help="folder of the published JSON Schemas")
    parser.add_argument("--max-events", type=int, help="stop after printing this many events")
    parser.add_argument("--idle-timeout", type=float, help="stop after this many seconds without a message")
    args = parser.parse_args()

    schemas = Schemas(args.schemas)
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(args.topics)
    seen: set[str] = set()
    printed = 0
    last_message_at = time.monotonic()
    try:
        while args.max_events is None or printed < args.max_events:
            message = consumer.poll(0.2)
            if message is None:
                if args.idle_timeout is not None and time.monotonic() - last_message_at > args.idle_timeout:
                    print(f"no message for {args.idle_timeout}s, stopping", file=sys.stderr)
                    break
                continue
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise RuntimeError(str(error))
                if error.code() != KafkaError._PARTITION_EOF:
                    print(f"kafka: {error}", file=sys.stderr)
                continue
            last_message_at = time.monotonic()
            position = f"{message.topic()}[{message.partition()}]@{message.offset()}"
            try:
                event = read_event(message, schemas)
            except Unreadable as problem:
                print(f"skipped {position}: {problem}", file=sys.stderr)
            else:
                if event["id"] in seen:
                    print(f"duplicate {position}: {event['id']}", file=sys.stderr)
                else:
                    seen.add(event["id"])
                    print(json.dumps(event, sort_keys=True), flush=True)
                    printed += 1
            consumer.commit(message=message, asynchronous=False)
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
