"""Apache Kafka from Maven Central, run as a local KRaft node."""

from shopstream_infra.kafka.fetch import ensure_kafka_libs, kafka_libs_dir, kafka_libs_ready, kafka_version
from shopstream_infra.kafka.node import KafkaNode, broker_answers_metadata, create_topics

__all__ = [
    "KafkaNode",
    "broker_answers_metadata",
    "create_topics",
    "ensure_kafka_libs",
    "kafka_libs_dir",
    "kafka_libs_ready",
    "kafka_version",
]
