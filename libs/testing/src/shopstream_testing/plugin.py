"""pytest fixtures for real local infrastructure (registered as the `shopstream` pytest11 plugin).

Everything starts lazily, the first time a test asks for it, so a unit-only run needs neither
Java nor PostgreSQL. Every process started here is stopped at teardown, at interpreter exit,
and, if pytest itself is killed, by the kernel (parent-death signal).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from typing import Protocol

import pytest

from shopstream_infra import KafkaNode, PostgresCluster, remove_temporary_data_dir, temporary_data_dir
from shopstream_infra.procs import install_signal_handlers
from shopstream_testing.kurrentdb import kurrentdb_server


class KafkaNodeFactory(Protocol):
    def __call__(self, *, start: bool = True, config: Mapping[str, str] | None = None) -> KafkaNode:
        """A new dedicated single-node cluster on its own free ports; started unless `start=False`."""
        ...


def pytest_configure(config: pytest.Config) -> None:
    # A CI runner's SIGTERM should unwind fixtures (and stop brokers) instead of killing pytest cold.
    install_signal_handlers()


@pytest.fixture(scope="session")
def kafka_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaNode]:
    """The session's shared Kafka node. Do not stop it in a test; use `kafka_node_factory` for that."""
    node = KafkaNode(tmp_path_factory.mktemp("kafka"), ephemeral=True)
    try:
        node.start()
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_node: KafkaNode) -> str:
    """`127.0.0.1:<port>` of the session's shared Kafka node."""
    return kafka_node.bootstrap_servers


@pytest.fixture
def kafka_node_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaNodeFactory]:
    """Dedicated Kafka nodes a test may stop, kill and restart; all are stopped at teardown."""
    nodes: list[KafkaNode] = []

    def make(*, start: bool = True, config: Mapping[str, str] | None = None) -> KafkaNode:
        # Smaller heap than the shared node: several may run at once next to it on a 2-core box.
        node = KafkaNode(
            tmp_path_factory.mktemp("kafka-node"), heap=("256m", "512m"), config=config, ephemeral=True
        )
        nodes.append(node)
        if start:
            node.start()
        return node

    try:
        yield make
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture(scope="session")
def kurrentdb_url() -> Iterator[str | None]:
    """A KurrentDB server: ``KURRENTDB_URL``, else one started by testcontainers where a Docker
    engine runs, else None (tests using it skip, and say why)."""
    with kurrentdb_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """The session's private PostgreSQL server (fsync on), deleted at the end of the session."""
    data_dir = temporary_data_dir()
    cluster = PostgresCluster(data_dir, ephemeral=True)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        remove_temporary_data_dir(data_dir)


def _database_name(request: pytest.FixtureRequest) -> str:
    stem = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower()).strip("_")[:40]
    # Identifiers are cut at 63 bytes; the random suffix keeps reruns and parallel workers apart.
    return f"t_{stem}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def postgres_dsn(postgres_cluster: PostgresCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """DSN (asyncpg/libpq URL) of a fresh database created for this test and dropped after it."""
    name = _database_name(request)
    dsn = postgres_cluster.create_database(name)
    try:
        yield dsn
    finally:
        if postgres_cluster.is_running():  # a fault test may have stopped it for good
            postgres_cluster.drop_database(name)
