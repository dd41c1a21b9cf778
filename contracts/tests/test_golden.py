"""Golden payloads: one realistic example per event type and version, kept forever.

Every golden must still decode, upcast to the latest version (backward-transitive
compatibility), and validate against the JSON Schema published for its version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from shopstream_contracts import REGISTRY

pytestmark = pytest.mark.unit

CONTRACTS_DIR = Path(__file__).resolve().parents[1]
GOLDEN_DIR = CONTRACTS_DIR / "golden"
SCHEMAS_DIR = CONTRACTS_DIR / "schemas"

GOLDENS = sorted(GOLDEN_DIR.glob("*/v*.json"))


def type_and_version(path: Path) -> tuple[str, int]:
    return path.parent.name, int(path.stem.removeprefix("v"))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def golden_id(path: Path) -> str:
    return f"{path.parent.name}.{path.stem}"


def test_every_registered_version_has_a_golden_and_every_golden_a_version() -> None:
    registered = {(c.type, c.version) for c in REGISTRY.contracts()}
    goldens = {type_and_version(path) for path in GOLDENS}

    assert sorted(registered - goldens) == [], "registered (type, version) without a golden payload"
    assert sorted(goldens - registered) == [], "golden payload of an unregistered (type, version)"


@pytest.mark.parametrize("path", GOLDENS, ids=golden_id)
def test_every_golden_has_its_published_schema(path: Path) -> None:
    event_type, version = type_and_version(path)

    assert (SCHEMAS_DIR / event_type / f"v{version}.json").is_file()


@pytest.mark.parametrize("path", GOLDENS, ids=golden_id)
def test_every_golden_decodes_and_upcasts_to_the_latest_version(path: Path) -> None:
    event_type, version = type_and_version(path)

    event = REGISTRY.decode(event_type, version, load(path))

    latest = REGISTRY.latest(event_type)
    assert type(event) is latest
    assert latest.validate_for_publish(event.to_data()) == event


@pytest.mark.parametrize("path", GOLDENS, ids=golden_id)
def test_every_golden_is_an_exact_payload_of_its_version(path: Path) -> None:
    # Strict: a field removed or renamed in a published version fails here even after the schema
    # files were regenerated.
    event_type, version = type_and_version(path)
    data = load(path)

    assert REGISTRY.validate_for_publish(event_type, version, data).to_data() == data


@pytest.mark.parametrize("path", GOLDENS, ids=golden_id)
def test_every_golden_validates_against_its_json_schema(path: Path) -> None:
    event_type, version = type_and_version(path)
    schema = load(SCHEMAS_DIR / event_type / f"v{version}.json")

    errors = [error.message for error in Draft202012Validator(schema).iter_errors(load(path))]

    assert errors == []


def test_the_json_schema_rejects_what_the_models_reject() -> None:
    schema = load(SCHEMAS_DIR / "shopstream.orders.OrderPlaced" / "v1.json")
    data = load(GOLDEN_DIR / "shopstream.orders.OrderPlaced" / "v1.json")
    data["total"] = {"amount": 179.8, "currency": "brl"}
    del data["buyer_id"]

    messages = sorted(error.message for error in Draft202012Validator(schema).iter_errors(data))

    assert any("'buyer_id' is a required property" in message for message in messages)
    assert any("179.8 is not of type 'integer'" in message for message in messages)
    assert any("'brl' does not match" in message for message in messages)


def test_the_json_schema_lets_readers_ignore_fields_added_later() -> None:
    schema = load(SCHEMAS_DIR / "shopstream.orders.OrderPlaced" / "v1.json")
    data = load(GOLDEN_DIR / "shopstream.orders.OrderPlaced" / "v1.json")
    data["gift_wrap"] = True
    data["line"]["unit_price"]["tax_included"] = True

    assert list(Draft202012Validator(schema).iter_errors(data)) == []
