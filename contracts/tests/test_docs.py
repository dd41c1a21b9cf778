"""docs/subscribing.md and its example consumer, as read by another team."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from shopstream_contracts import DEADLETTER_HEADERS, DEADLETTER_TOPIC, REGISTRY

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
GUIDE = REPO_ROOT / "docs" / "subscribing.md"
EXAMPLE = REPO_ROOT / "docs" / "examples" / "plain_consumer.py"


def test_the_guide_names_every_topic_with_its_key_and_every_event_version() -> None:
    guide = GUIDE.read_text(encoding="utf-8")

    for topic in REGISTRY.topics():
        assert f"| `{topic.name}` | `{topic.key}` |" in guide
    for contract in REGISTRY.contracts():
        assert f"| `{contract.type}` | {contract.version} |" in guide


def test_the_guide_documents_the_dead_letter_contract() -> None:
    guide = GUIDE.read_text(encoding="utf-8")

    assert f"`{DEADLETTER_TOPIC}`" in guide
    for header in DEADLETTER_HEADERS:
        assert f"`{header}`" in guide


def test_the_example_consumer_needs_only_confluent_kafka_and_jsonschema() -> None:
    tree = ast.parse(EXAMPLE.read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    top_level = {name.partition(".")[0] for name in imported}

    assert top_level - sys.stdlib_module_names == {"confluent_kafka", "jsonschema"}
