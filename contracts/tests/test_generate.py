"""The published artefacts (JSON Schemas, AsyncAPI, topic tables) and their drift check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from shopstream_contracts import DEADLETTER_HEADERS, DEADLETTER_TOPIC, REGISTRY, _yaml
from shopstream_contracts.generate import (
    ASYNCAPI_PATH,
    REPO_ROOT,
    SCHEMAS_DIR,
    SUBSCRIBING_PATH,
    asyncapi,
    drift,
    main,
    render,
    write,
)

pytestmark = pytest.mark.unit

ORDER_PLACED_SCHEMA = SCHEMAS_DIR / "shopstream.orders.OrderPlaced" / "v1.json"


def test_committed_artefacts_match_the_models() -> None:
    problems = drift(REGISTRY, REPO_ROOT)

    assert problems == [], (
        "contract artefacts drifted from the models:\n  "
        + "\n  ".join(problems)
        + "\nA published (type, version) must never change incompatibly: add version N+1 and an upcaster "
        "vN→vN+1 instead. Only compatible changes (a new optional field, docs) are regenerated in place: "
        "uv run python -m shopstream_contracts.generate"
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the committed artefacts to break."""
    shutil.copytree(REPO_ROOT / SCHEMAS_DIR, tmp_path / SCHEMAS_DIR)
    shutil.copy(REPO_ROOT / ASYNCAPI_PATH, tmp_path / ASYNCAPI_PATH)
    (tmp_path / SUBSCRIBING_PATH).parent.mkdir(parents=True)
    shutil.copy(REPO_ROOT / SUBSCRIBING_PATH, tmp_path / SUBSCRIBING_PATH)
    return tmp_path


def edit_schema(root: Path, change: Any) -> None:
    path = root / ORDER_PLACED_SCHEMA
    schema = json.loads(path.read_text(encoding="utf-8"))
    change(schema)
    path.write_text(json.dumps(schema), encoding="utf-8")


def test_check_passes_on_an_exact_copy(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check", "--root", str(checkout)]) == 0
    assert "up to date" in capsys.readouterr().out


def test_check_demands_a_new_version_when_a_published_schema_changes_incompatibly(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The committed v1 has a field the models no longer have: a removal, hence breaking.
    edit_schema(checkout, lambda schema: schema["properties"].update(coupon={"type": "string"}))

    assert main(["--check", "--root", str(checkout)]) == 1

    err = capsys.readouterr().err
    published = "the published schema of (shopstream.orders.OrderPlaced, v1) changed incompatibly"
    assert f"{ORDER_PLACED_SCHEMA}: {published}" in err
    assert "add version 2 and an upcaster v1→v2 instead" in err
    assert "1 contract artefact(s) drifted" in err


def test_a_type_change_and_a_newly_required_field_are_breaking(checkout: Path) -> None:
    def change(schema: dict[str, Any]) -> None:
        schema["$defs"]["Money"]["properties"]["amount"]["type"] = "number"

    edit_schema(checkout, change)
    assert "changed incompatibly" in drift(REGISTRY, checkout)[0]

    edit_schema(checkout, lambda schema: schema["required"].remove("buyer_id"))
    assert "changed incompatibly" in drift(REGISTRY, checkout)[0]


def test_a_new_optional_field_or_a_doc_change_only_needs_regenerating(checkout: Path) -> None:
    def change(schema: dict[str, Any]) -> None:
        del schema["$defs"]["Attribution"]["properties"]["flash_deal_id"]
        schema["properties"]["total"]["description"] = "older wording"

    edit_schema(checkout, change)

    assert drift(REGISTRY, checkout) == [
        f"{ORDER_PLACED_SCHEMA}: changed compatibly (new optional fields or docs); run the generator"
    ]


def test_check_lists_missing_stale_and_outdated_artefacts(checkout: Path) -> None:
    (checkout / ORDER_PLACED_SCHEMA).unlink()
    stale = checkout / SCHEMAS_DIR / "shopstream.orders.OrderPlaced" / "v7.json"
    stale.write_text("{}", encoding="utf-8")
    (checkout / ASYNCAPI_PATH).write_text("asyncapi: 3.0.0\n", encoding="utf-8")

    assert drift(REGISTRY, checkout) == [
        f"{ASYNCAPI_PATH}: out of date; run the generator",
        f"{ORDER_PLACED_SCHEMA}: missing; run the generator",
        f"{stale.relative_to(checkout)}: schema of a version that is no longer registered; "
        "published versions are never removed",
    ]


def test_writing_repairs_every_drift(checkout: Path) -> None:
    (checkout / ORDER_PLACED_SCHEMA).unlink()
    (checkout / SCHEMAS_DIR / "shopstream.orders.OrderPlaced" / "v7.json").write_text("{}", encoding="utf-8")
    subscribing = checkout / SUBSCRIBING_PATH
    subscribing.write_text(
        subscribing.read_text(encoding="utf-8").replace("`order_id`", "`id`"), encoding="utf-8"
    )

    changed = write(REGISTRY, checkout)

    assert set(changed) == {
        ORDER_PLACED_SCHEMA,
        SCHEMAS_DIR / "shopstream.orders.OrderPlaced" / "v7.json",
        SUBSCRIBING_PATH,
    }
    assert drift(REGISTRY, checkout) == []
    assert write(REGISTRY, checkout) == []


def test_the_output_is_deterministic() -> None:
    first, second = render(REGISTRY, REPO_ROOT), render(REGISTRY, REPO_ROOT)

    assert first == second
    assert all(content.endswith("\n") for content in first.values())
    schema = json.loads(first[ORDER_PLACED_SCHEMA])
    assert list(schema) == sorted(schema)


def test_every_schema_declares_draft_2020_12_and_its_identity() -> None:
    for contract in REGISTRY.contracts():
        path = REPO_ROOT / SCHEMAS_DIR / contract.type / f"v{contract.version}.json"
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["x-shopstream-type"] == contract.type
        assert schema["x-shopstream-dataversion"] == contract.version
        assert schema["x-shopstream-topic"] == contract.topic.name
        assert schema["x-shopstream-key"] in schema["required"]


def test_asyncapi_lists_every_topic_message_key_and_header() -> None:
    document = yaml.safe_load((REPO_ROOT / ASYNCAPI_PATH).read_text(encoding="utf-8"))

    assert document == json.loads(json.dumps(asyncapi(REGISTRY)))
    assert document["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {topic.name for topic in REGISTRY.topics()} | {DEADLETTER_TOPIC}
    messages = document["components"]["messages"]
    for contract in REGISTRY.contracts():
        message = messages[f"{contract.type}.v{contract.version}"]
        assert (REPO_ROOT / ASYNCAPI_PATH.parent / message["payload"]["$ref"]).is_file()
        headers = message["headers"]
        assert headers["properties"]["ce_type"]["const"] == contract.type
        assert headers["properties"]["dataversion"]["const"] == str(contract.version)
        assert set(headers["required"]) == {
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_specversion",
            "ce_time",
            "ce_subject",
            "content-type",
            "dataversion",
        }
        assert {"correlationid", "causationid"} <= set(headers["properties"])
        assert contract.topic.key in message["bindings"]["kafka"]["key"]["description"]
    assert set(messages["DeadLetter"]["headers"]["properties"]) == set(DEADLETTER_HEADERS)


json_keys = st.text(max_size=12)
json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=30)
json_documents = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(json_keys, children, max_size=4),
    max_leaves=25,
)


@given(json_documents)
def test_the_yaml_writer_round_trips_any_json_document(document: Any) -> None:
    assert yaml.safe_load(_yaml.dump(document)) == document


@pytest.mark.parametrize(
    "text",
    ["yes", "No", "on", "null", "~", "1.0", "0x1F", "2025-05-01", "a: b", "#x", "- x", "$ref", "\u2028", "é"],
)
def test_the_yaml_writer_keeps_lookalike_strings_strings(text: str) -> None:
    assert yaml.safe_load(_yaml.dump({text: [text]})) == {text: [text]}
