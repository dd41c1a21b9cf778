"""The whole platform on one machine: a Kafka node, optionally PostgreSQL, and the five
services as separate processes, each with its own store — what `shopstream up`, the demo and
the end-to-end tests run.

Services are real processes (``python -m shopstream_<service>``) that talk only through Kafka;
the platform can kill -9 one and start it again on the same port and store, as a crashed pod
would be restarted.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx

from shopstream_contracts import DEADLETTER_TOPIC, REGISTRY
from shopstream_infra import (
    KafkaNode,
    PostgresCluster,
    create_topics,
    remove_temporary_data_dir,
    temporary_data_dir,
)
from shopstream_infra.procs import Proc, free_ports, spawn, tail

SERVICES = ("live", "chat", "catalog", "orders", "commission")
Store = Literal["sqlite", "postgres"]


class PlatformError(RuntimeError):
    pass


@dataclass
class ServiceProcess:
    name: str
    port: int
    log_file: Path
    env: dict[str, str]
    proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        popen = spawn(
            [sys.executable, "-m", f"shopstream_{self.name}"],
            log_file=self.log_file,
            env=self.env,
            die_with_parent=signal.SIGKILL,
        )
        self.proc = Proc(popen.pid, popen)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()


@dataclass
class Platform:
    workdir: Path
    store: Store = "sqlite"
    partitions: int = 6
    clock_control: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    kafka: KafkaNode | None = None
    postgres: PostgresCluster | None = None
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    _pg_dir: Path | None = None

    def start(self, ready_timeout: float = 120.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kafka = KafkaNode(self.workdir / "kafka", ephemeral=True)
        self.kafka.start()
        topics = [topic.name for topic in REGISTRY.topics()]
        create_topics(self.kafka.bootstrap_servers, [*topics, DEADLETTER_TOPIC], partitions=self.partitions)
        database_url = None
        if self.store == "postgres":
            self._pg_dir = temporary_data_dir()
            self.postgres = PostgresCluster(self._pg_dir, ephemeral=True)
            self.postgres.start()
            database_url = self.postgres.create_database("shopstream")
        ports = free_ports(len(SERVICES))
        for name, port in zip(SERVICES, ports, strict=True):
            store_url = database_url or f"sqlite:///{self.workdir / 'data' / name}.sqlite"
            env = {
                **os.environ,
                **self.env,
                "SHOPSTREAM_STORE_URL": store_url,
                "SHOPSTREAM_KAFKA_BOOTSTRAP": self.kafka.bootstrap_servers,
                "SHOPSTREAM_HTTP_PORT": str(port),
                "SHOPSTREAM_CLOCK_CONTROL": "true" if self.clock_control else "false",
            }
            self.services[name] = ServiceProcess(name, port, self.workdir / "logs" / f"{name}.log", env)
        (self.workdir / "data").mkdir(exist_ok=True)
        for service in self.services.values():
            service.start()
        self.wait_ready(ready_timeout)

    def wait_ready(self, timeout: float = 120.0, names: tuple[str, ...] | None = None) -> None:
        """Until every service answers /readyz with 200 (its store, Kafka and projections up)."""
        deadline = time.monotonic() + timeout
        pending = set(names or self.services)
        with httpx.Client(timeout=2) as client:
            while pending:
                for name in sorted(pending):
                    service = self.services[name]
                    if not service.alive():
                        raise PlatformError(f"{name} exited while starting:\n{tail(service.log_file, 30)}")
                    try:
                        if client.get(f"{service.url}/readyz").status_code == 200:
                            pending.discard(name)
                    except httpx.TransportError:
                        pass
                if pending and time.monotonic() > deadline:
                    logs = "\n".join(f"--- {n}\n{tail(self.services[n].log_file, 20)}" for n in pending)
                    raise PlatformError(f"not ready after {timeout:g}s: {sorted(pending)}\n{logs}")
                if pending:
                    time.sleep(0.1)

    def url(self, name: str) -> str:
        return self.services[name].url

    def kill9(self, name: str) -> None:
        proc = self.services[name].proc
        if proc is not None:
            proc.kill()

    def restart(self, name: str, ready_timeout: float = 60.0) -> None:
        """Start a killed (or stopped) service again on the same port and store."""
        service = self.services[name]
        if service.alive():
            raise PlatformError(f"{name} is still running")
        service.start()
        self.wait_ready(ready_timeout, (name,))

    def stop(self) -> None:
        for service in self.services.values():
            if service.proc is not None:
                service.proc.stop(signal.SIGTERM, 15)
        if self.kafka is not None:
            self.kafka.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if self._pg_dir is not None:
            remove_temporary_data_dir(self._pg_dir)


@contextmanager
def running_platform(
    workdir: Path,
    *,
    store: Store = "sqlite",
    clock_control: bool = False,
    env: Mapping[str, str] | None = None,
) -> Iterator[Platform]:
    platform = Platform(workdir, store=store, clock_control=clock_control, env=dict(env or {}))
    try:
        platform.start()
        yield platform
    finally:
        platform.stop()
