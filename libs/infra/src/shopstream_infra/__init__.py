"""Real local infrastructure for development and tests: Apache Kafka (KRaft) and PostgreSQL."""

from shopstream_infra.errors import InfraError
from shopstream_infra.kafka import (
    KafkaNode,
    broker_answers_metadata,
    create_topics,
    ensure_kafka_libs,
    kafka_libs_dir,
    kafka_libs_ready,
    kafka_version,
)
from shopstream_infra.paths import cache_root, repo_root, state_root
from shopstream_infra.postgres import (
    PostgresCluster,
    data_dir_for,
    find_bindir,
    remove_temporary_data_dir,
    temporary_data_dir,
)

__all__ = [
    "InfraError",
    "KafkaNode",
    "PostgresCluster",
    "broker_answers_metadata",
    "cache_root",
    "create_topics",
    "data_dir_for",
    "ensure_kafka_libs",
    "find_bindir",
    "kafka_libs_dir",
    "kafka_libs_ready",
    "kafka_version",
    "remove_temporary_data_dir",
    "repo_root",
    "state_root",
    "temporary_data_dir",
]
