"""One Apache Kafka node (KRaft, combined broker+controller) on loopback, run as a child process."""

from __future__ import annotations

import base64
import contextlib
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from shopstream_infra.errors import InfraError
from shopstream_infra.kafka.fetch import ensure_kafka_libs, java_executable
from shopstream_infra.procs import (
    Proc,
    free_ports,
    pid_matches,
    port_is_free,
    register_cleanup,
    spawn,
    tail,
    unregister_cleanup,
)

HOST = "127.0.0.1"
_OFFSETS_TOPIC = "__consumer_offsets"
_WARMUP_GROUP = "shopstream-infra-warmup"

# The stock scripts' G1 settings (kafka-run-class.sh); they suit small heaps on a 2-core box too.
_JVM_PERFORMANCE_OPTS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)

_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRefs = console
rootLogger.appenderRef.console.ref = console
# Per-request and per-partition state logging is only noise for a local node.
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def _admin(bootstrap: str) -> AdminClient:
    return AdminClient(
        {
            "bootstrap.servers": bootstrap,
            # librdkafka backs off exponentially up to 10 s by default; a node coming up should be
            # noticed within a fraction of a second.
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 250,
            "socket.connection.setup.timeout.ms": 2000,
            # "Connection refused" while the node starts is expected, not worth printing.
            "log_level": 0,
        }
    )


def _kafka_uuid() -> str:
    # What `StorageTool random-uuid` prints (Uuid.randomUuid: URL-safe base64 of 16 random bytes,
    # never starting with '-'), without paying for a JVM start.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def broker_answers_metadata(bootstrap: str, timeout: float = 2.0) -> bool:
    """One metadata round trip; True when at least one broker is listed."""
    try:
        metadata = _admin(bootstrap).list_topics(timeout=timeout)
    except KafkaException:
        return False
    return bool(metadata.brokers)


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 1,
    *,
    config: Mapping[str, str] | None = None,
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> None:
    """Create topics (existing ones are left alone) and wait until every partition has a leader.

    Waiting for leaders avoids the first produce racing leader election (LEADER_NOT_AVAILABLE retries).
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return
    admin = _admin(bootstrap)
    futures = admin.create_topics(
        [NewTopic(n, partitions, replication_factor, config=dict(config or {})) for n in wanted],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    for name, future in futures.items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            error = exc.args[0]
            if not (isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise InfraError(f"could not create topic {name!r}: {error}") from exc
    deadline = time.monotonic() + timeout
    while True:
        metadata = admin.list_topics(timeout=max(0.5, deadline - time.monotonic()))
        pending = [
            n
            for n in wanted
            if n not in metadata.topics
            or metadata.topics[n].error is not None
            or not metadata.topics[n].partitions
            or any(p.leader < 0 for p in metadata.topics[n].partitions.values())
        ]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise InfraError(f"topics without a leader after {timeout:.0f}s: {pending}")
        time.sleep(0.05)


class KafkaNode:
    """A single-node Kafka cluster (KRaft broker+controller) bound to 127.0.0.1.

    Ports are chosen once (free ports unless given) and kept for the node's lifetime, so
    `stop()`/`kill()` followed by `start()` brings the same broker back at the same address with
    the same data, which is what clients reconnect to in fault tests.

    `ephemeral=True` ties the node to this Python process: it is stopped at interpreter exit and
    the kernel SIGTERMs it if this process dies (the thread calling `start()` should be long-lived,
    e.g. the main thread; see `procs.spawn`).
    """

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        node_id: int = 1,
        heap: tuple[str, str] = ("512m", "1g"),
        config: Mapping[str, str] | None = None,
        log_level: str = "INFO",
        ephemeral: bool = False,
    ) -> None:
        self.directory = directory.resolve()
        if port is None or controller_port is None:
            picked = iter(free_ports(2))
            port = port if port is not None else next(picked)
            controller_port = controller_port if controller_port is not None else next(picked)
        self.port = port
        self.controller_port = controller_port
        self.node_id = node_id
        self.heap = heap
        self.extra_config = dict(config or {})
        self.log_level = log_level
        self.ephemeral = ephemeral
        self._proc: Proc | None = None

    # --- layout -----------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def properties_file(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.directory / "kafka.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.alive() else None

    def server_properties(self) -> dict[str, str]:
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.bootstrap.servers": f"{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "auto.create.topics.enable": "true",
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            # One node: every internal topic must be satisfiable by it alone.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # 50 partitions each by default: creating them on first use costs seconds on 2 cores.
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.num.partitions": "4",
            # Tests join consumer groups constantly; nobody else is coming, so do not wait for them.
            "group.initial.rebalance.delay.ms": "0",
            # Lets fault tests use short client session timeouts, so a kill -9'd consumer's
            # partitions move on within seconds (the broker default minimum is 6 s).
            "group.min.session.timeout.ms": "1000",
            # After a kill -9 the restarted node is refused (DUPLICATE_BROKER_REGISTRATION) until its
            # previous incarnation's session expires: 9 s by default, 3 s here. Heartbeats must be
            # well inside that, so a loaded 2-core box does not fence a healthy broker.
            "broker.session.timeout.ms": "3000",
            "broker.heartbeat.interval.ms": "500",
            # Thread pools sized for 2 cores instead of a production box (defaults 3/8/10).
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "num.replica.fetchers": "1",
            "log.cleaner.threads": "1",
            # The compaction buffer is allocated on the heap up front (default 128 MiB).
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        }
        props.update(self.extra_config)
        return props

    def _write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        lines = [f"{k}={v}" for k, v in self.server_properties().items()]
        self.properties_file.write_text("\n".join(lines) + "\n")
        (self.directory / "log4j2.properties").write_text(_LOG4J2.format(level=self.log_level))

    @property
    def formatted(self) -> bool:
        return (self.data_dir / "meta.properties").is_file()

    def _classpath(self) -> str:
        return f"{ensure_kafka_libs()}/*"

    def _format(self) -> None:
        cmd = [
            java_executable(),
            "-Xmx256m",
            # A one-shot tool: the fastest JVM start matters more than peak performance.
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            f"-Dlog4j2.configurationFile={self.directory / 'log4j2.properties'}",
            "-cp",
            self._classpath(),
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "--cluster-id",
            _kafka_uuid(),
            "--config",
            str(self.properties_file),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise InfraError(
                f"formatting Kafka storage in {self.data_dir} failed:\n{result.stdout}{result.stderr}"
            )

    # --- lifecycle --------------------------------------------------------------------------

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.alive()

    def adopt(self, pid: int) -> bool:
        """Take over a node started earlier by another process (the CLI); False if it is gone."""
        if pid_matches(pid, str(self.properties_file)):
            self._proc = Proc(pid)
            return True
        return False

    def start(self, timeout: float = 90.0) -> None:
        """Start (formatting storage the first time); return once the broker answers metadata and
        its group coordinator is available."""
        if self.is_running():
            return
        for port in (self.port, self.controller_port):
            if not port_is_free(port):
                raise InfraError(f"port {HOST}:{port} for Kafka node {self.directory} is already in use")
        classpath = self._classpath()
        self._write_config()
        if not self.formatted:
            self._format()
        min_heap, max_heap = self.heap
        cmd = [
            java_executable(),
            f"-Xms{min_heap}",
            f"-Xmx{max_heap}",
            *_JVM_PERFORMANCE_OPTS,
            f"-Dlog4j2.configurationFile={self.directory / 'log4j2.properties'}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(self.properties_file),
        ]
        with self.log_file.open("a") as log:
            log.write(f"\n===== starting Kafka node at {time.strftime('%Y-%m-%d %H:%M:%S')} =====\n")
        popen = spawn(
            cmd,
            log_file=self.log_file,
            cwd=self.directory,
            die_with_parent=signal.SIGTERM if self.ephemeral else None,
        )
        self._proc = Proc(popen.pid, popen)
        if self.ephemeral:
            register_cleanup(self, self.stop)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        admin = _admin(self.bootstrap_servers)
        while True:
            if not self._proc.alive():
                raise InfraError(
                    f"Kafka node exited during startup (code {self._proc.returncode()}); "
                    f"last lines of {self.log_file}:\n{tail(self.log_file)}"
                )
            try:
                metadata = admin.list_topics(timeout=1.0)
            except KafkaException:
                metadata = None
            if (
                metadata is not None
                and self.node_id in metadata.brokers
                and self._group_coordinator_ready(admin)
            ):
                return
            if time.monotonic() > deadline:
                raise InfraError(
                    f"Kafka node did not answer metadata on {self.bootstrap_servers} within {timeout:.0f}s; "
                    f"last lines of {self.log_file}:\n{tail(self.log_file)}"
                )
            time.sleep(0.1)

    @staticmethod
    def _group_coordinator_ready(admin: AdminClient) -> bool:
        # __consumer_offsets is created on the first FindCoordinator. Left to the first consumer,
        # that costs it ~3 s of librdkafka retry backoff; asked for here, it takes ~0.2 s.
        metadata = admin.list_topics(topic=_OFFSETS_TOPIC, timeout=1.0)
        topic = metadata.topics.get(_OFFSETS_TOPIC)
        if topic is not None and topic.error is None and topic.partitions:
            return all(p.leader >= 0 for p in topic.partitions.values())
        for future in admin.describe_consumer_groups([_WARMUP_GROUP], request_timeout=1.0).values():
            with contextlib.suppress(KafkaException):
                future.result(timeout=2.0)
        return False

    def stop(self, timeout: float = 30.0) -> None:
        """Controlled shutdown (SIGTERM); SIGKILL if it takes longer than `timeout`."""
        if self._proc is not None:
            self._proc.stop(signal.SIGTERM, timeout)
        unregister_cleanup(self)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no controlled shutdown, log recovery on the next start."""
        if self._proc is not None:
            self._proc.kill()
        unregister_cleanup(self)

    def restart(self, timeout: float = 90.0) -> None:
        self.stop()
        self.start(timeout)

    def create_topics(
        self, names: Iterable[str], partitions: int = 1, *, config: Mapping[str, str] | None = None
    ) -> None:
        create_topics(self.bootstrap_servers, names, partitions, config=config)

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_file, lines)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running() else "stopped"
        return f"KafkaNode({self.bootstrap_servers}, {self.directory}, {state})"
