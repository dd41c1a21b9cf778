"""One set of Kafka topics everywhere: the contracts (shopstream_contracts.REGISTRY plus the
dead-letter topic), their AsyncAPI document, the KafkaTopic resources of every Kubernetes overlay
and the topics docker-compose.yml creates. A topic added to the contracts and forgotten in a
deployment (or the reverse) fails here, before a service meets a missing topic in production."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shopstream_contracts import DEADLETTER_TOPIC, REGISTRY

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KUBECTL = Path(sys.executable).with_name("kubectl")
OVERLAYS = ("dev", "prod")
TOPIC = re.compile(r"shopstream\.[a-z0-9][a-z0-9._-]*[a-z0-9]")
# The compose service that creates the topics: named like `topics`, `kafka-topics`, `kafka-init`... or
# any service whose command runs kafka-topics.
TOPICS_JOB = re.compile(r"topic|^kafka-(init|setup)$")


def expected() -> set[str]:
    return {topic.name for topic in REGISTRY.topics()} | {DEADLETTER_TOPIC}


def asyncapi_topics() -> set[str]:
    document = yaml.safe_load((REPO / "contracts" / "asyncapi.yaml").read_text())
    return {channel["address"] for channel in document["channels"].values()}


@functools.cache
def kubernetes_topics(overlay: str) -> frozenset[str]:
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(REPO / "deploy" / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return frozenset(
        doc["spec"].get("topicName", doc["metadata"]["name"])
        for doc in yaml.safe_load_all(result.stdout)
        if doc and doc["kind"] == "KafkaTopic"
    )


def flatten(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(flatten(item) for item in value)
    return "" if value is None else str(value)


def compose_topics() -> set[str]:
    """Every `shopstream.*` token of the topic-creation service's entrypoint and command (however it
    spells the creation: one kafka-topics call per topic, a loop over a list, a helper function)."""
    services: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    jobs = {
        name: service
        for name, service in services.items()
        if TOPICS_JOB.search(name) or "kafka-topics" in flatten(service.get("command"))
    }
    assert jobs, f"docker-compose.yml has no topic-creation service among {sorted(services)}"
    found: set[str] = set()
    for service in jobs.values():
        script = " ".join(flatten(service.get(key)) for key in ("entrypoint", "command"))
        found |= set(TOPIC.findall(script))
    return found


def test_contracts_and_asyncapi_agree() -> None:
    assert asyncapi_topics() == expected()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_creates_every_topic(overlay: str) -> None:
    assert kubernetes_topics(overlay) == expected()


def test_compose_creates_every_topic() -> None:
    assert compose_topics() == expected()


def test_the_dead_letter_topic_is_everywhere() -> None:
    assert DEADLETTER_TOPIC in asyncapi_topics()
    assert DEADLETTER_TOPIC in compose_topics()
    assert all(DEADLETTER_TOPIC in kubernetes_topics(overlay) for overlay in OVERLAYS)
