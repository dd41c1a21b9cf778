"""What a benchmark runs with: its size profile, a scratch directory and real infrastructure
(Kafka, PostgreSQL) started once per harness run, on first use."""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from rich.console import Console

from shopstream_infra.kafka.node import KafkaNode
from shopstream_infra.postgres import PostgresCluster, remove_temporary_data_dir, temporary_data_dir

Profile = Literal["smoke", "quick", "full"]
T = TypeVar("T")


@dataclass
class BenchContext:
    profile: Profile
    workdir: Path
    console: Console = field(default_factory=lambda: Console(stderr=True))
    external_kafka: str | None = None
    """A bootstrap address to use instead of starting a node (the test suite's shared one)."""
    _kafka: KafkaNode | None = None
    _postgres: PostgresCluster | None = None
    """Set from outside to share a running server (the test suite's)."""
    _pg_dir: Path | None = None
    _names: itertools.count[int] = field(default_factory=itertools.count)

    def size(self, *, smoke: T, quick: T, full: T) -> T:
        """The value for this run's profile: smoke (seconds, checks only), quick, full."""
        return {"smoke": smoke, "quick": quick, "full": full}[self.profile]

    @property
    def repeats(self) -> int:
        """Runs per figure: medians with min/max come from these."""
        return self.size(smoke=1, quick=3, full=5)

    def unique(self, prefix: str) -> str:
        """A fresh name (topic, database, file) for this run."""
        return f"{prefix}_{next(self._names)}"

    def scratch(self, name: str) -> Path:
        path = self.workdir / self.unique(name)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def kafka(self) -> KafkaNode:
        """The run's single-node Kafka (started on first use, stopped by ``close``)."""
        if self._kafka is None:
            node = KafkaNode(self.workdir / "kafka", ephemeral=True)
            if self.external_kafka is not None:
                raise RuntimeError("this run shares an external Kafka: use kafka_bootstrap")
            node.start()
            self._kafka = node
        return self._kafka

    @property
    def kafka_bootstrap(self) -> str:
        return self.external_kafka or self.kafka.bootstrap_servers

    @property
    def postgres(self) -> PostgresCluster:
        """The run's PostgreSQL server (fsync on, as in production)."""
        if self._postgres is None:
            self._pg_dir = temporary_data_dir()
            cluster = PostgresCluster(self._pg_dir, ephemeral=True)
            cluster.start()
            self._postgres = cluster
        return self._postgres

    def postgres_database(self, prefix: str = "bench") -> str:
        """The DSN of a fresh database."""
        return self.postgres.create_database(self.unique(prefix))

    def step(self, what: str) -> None:
        self.console.log(what)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._kafka is not None:
                self._kafka.stop()
        with contextlib.suppress(Exception):
            if self._postgres is not None and self._pg_dir is not None:
                self._postgres.stop()
        if self._pg_dir is not None:  # only a server this context started
            remove_temporary_data_dir(self._pg_dir)
