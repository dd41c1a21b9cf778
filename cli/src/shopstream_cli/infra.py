"""`shopstream infra`: fetch, start, inspect and stop the local Kafka node and PostgreSQL server.

Started servers are detached (their own sessions) and outlive the command; their pids, ports and
directories go to `<state>/infra.json` (`<repo>/.local/` unless $SHOPSTREAM_STATE is set), which
is how a later `status`/`down`/`up` finds them again.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn, TypedDict

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from shopstream_infra import (
    InfraError,
    KafkaNode,
    PostgresCluster,
    data_dir_for,
    ensure_kafka_libs,
    kafka_libs_ready,
    kafka_version,
    state_root,
)
from shopstream_infra.procs import install_signal_handlers

app = typer.Typer(no_args_is_help=True, help="Local Apache Kafka and PostgreSQL, run as plain processes.")
console = Console()
err_console = Console(stderr=True)


class KafkaState(TypedDict):
    directory: str
    port: int
    controller_port: int
    pid: int | None


class PostgresState(TypedDict):
    data_dir: str
    port: int
    pid: int | None


class InfraState(TypedDict, total=False):
    kafka: KafkaState
    postgres: PostgresState


def _state_file() -> Path:
    return state_root() / "infra.json"


def _load_state() -> InfraState:
    try:
        loaded: InfraState = json.loads(_state_file().read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        _fail(f"unreadable state file {_state_file()}: {exc}; remove it after checking for stray processes")
    return loaded


def _save_state(state: InfraState) -> None:
    path = _state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)  # atomic, so a crash never leaves half a state file


@contextmanager
def _locked() -> Iterator[None]:
    # Two concurrent `up`s (or `up` racing `down`) must not start duplicates or lose pids.
    lock = state_root() / "infra.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _fail(message: str) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


def _kafka(state: InfraState) -> KafkaNode:
    recorded = state.get("kafka")
    if recorded is None:
        return KafkaNode(state_root() / "kafka")
    node = KafkaNode(
        Path(recorded["directory"]), port=recorded["port"], controller_port=recorded["controller_port"]
    )
    if recorded["pid"] is not None:
        node.adopt(recorded["pid"])
    return node


def _postgres(state: InfraState) -> PostgresCluster:
    recorded = state.get("postgres")
    if recorded is None:
        return PostgresCluster(data_dir_for(state_root() / "postgres"))
    cluster = PostgresCluster(Path(recorded["data_dir"]), port=recorded["port"])
    cluster.adopt()
    return cluster


def _record(state: InfraState, node: KafkaNode, cluster: PostgresCluster) -> None:
    state["kafka"] = {
        "directory": str(node.directory),
        "port": node.port,
        "controller_port": node.controller_port,
        "pid": node.pid,
    }
    state["postgres"] = {"data_dir": str(cluster.data_dir), "port": cluster.port, "pid": cluster.pid}


def _table(node: KafkaNode, cluster: PostgresCluster) -> Table:
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    for column in ("component", "state", "pid", "address"):
        # Addresses are for copy-pasting: never wrapped or cut, whatever the terminal width.
        table.add_column(column, no_wrap=True, overflow="ignore")

    def state_of(running: bool) -> str:
        return "[green]running[/]" if running else "[red]stopped[/]"

    table.add_row(
        f"kafka {kafka_version()}", state_of(node.is_running()), str(node.pid or "-"), node.bootstrap_servers
    )
    table.add_row("postgresql", state_of(cluster.is_running()), str(cluster.pid or "-"), cluster.dsn())
    return table


def _show(node: KafkaNode, cluster: PostgresCluster) -> None:
    console.print(_table(node, cluster))
    # Paths go below the table: they are long, and copy-pasting them from wrapped cells is painful.
    console.print(f"kafka data {node.data_dir}\n      log  {node.log_file}", highlight=False)
    console.print(f"pg    data {cluster.data_dir}\n      log  {cluster.log_file}", highlight=False)


@app.callback()
def _setup() -> None:
    # SIGTERM/SIGHUP become KeyboardInterrupt, so a half-done `up` still stops what it started.
    install_signal_handlers()


@app.command()
def fetch(force: Annotated[bool, typer.Option(help="Download again even if cached.")] = False) -> None:
    """Download the Kafka broker jars from Maven Central into the cache (once)."""
    cached = kafka_libs_ready() and not force
    started = time.monotonic()
    try:
        with console.status(f"Resolving Apache Kafka {kafka_version()} with Maven…"):
            libs = ensure_kafka_libs(force=force)
    except InfraError as exc:
        _fail(str(exc))
    jars = len(list(libs.glob("*.jar")))
    how = "already cached" if cached else f"fetched in {time.monotonic() - started:.1f}s"
    console.print(f"Kafka {kafka_version()}: {jars} jars in {libs} ({how})")


@app.command()
def up(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each server to be ready.")] = 120.0,
) -> None:
    """Start Kafka and PostgreSQL in the background (no-op for what already runs)."""
    with _locked():
        state = _load_state()
        node, cluster = _kafka(state), _postgres(state)
        started: list[KafkaNode | PostgresCluster] = []
        try:
            for server, label in ((cluster, "PostgreSQL"), (node, "Kafka")):
                if server.is_running():
                    console.print(f"{label} already running (pid {server.pid})")
                    continue
                began = time.monotonic()
                with console.status(f"Starting {label}…"):
                    server.start(timeout)
                started.append(server)
                console.print(f"{label} started in {time.monotonic() - began:.1f}s")
        except InfraError as exc:
            _stop_all(started)
            _record(state, node, cluster)
            _save_state(state)
            _fail(str(exc))
        except BaseException:
            _stop_all(started)
            raise
        _record(state, node, cluster)
        _save_state(state)
    _show(node, cluster)
    console.print(f"KAFKA_BOOTSTRAP_SERVERS={node.bootstrap_servers}")
    console.print(f"DATABASE_URL={cluster.dsn()}")


def _stop_all(servers: list[KafkaNode | PostgresCluster]) -> None:
    for server in reversed(servers):
        server.stop()


@app.command()
def status(
    env: Annotated[bool, typer.Option("--env", help="Print shell exports instead of a table.")] = False,
) -> None:
    """Show what runs; exit code 1 unless both Kafka and PostgreSQL are running."""
    state = _load_state()
    if not state:
        if not env:
            console.print("Nothing started yet: run `shopstream infra up`.")
        raise typer.Exit(1)
    node, cluster = _kafka(state), _postgres(state)
    if env:
        console.print(f"export KAFKA_BOOTSTRAP_SERVERS={node.bootstrap_servers}", highlight=False)
        console.print(f"export DATABASE_URL={cluster.dsn()}", highlight=False)
    else:
        _show(node, cluster)
    if not (node.is_running() and cluster.is_running()):
        raise typer.Exit(1)


@app.command()
def down(
    purge: Annotated[bool, typer.Option(help="Also delete the data directories and the state file.")] = False,
) -> None:
    """Stop Kafka and PostgreSQL cleanly (safe to run when nothing runs)."""
    if not _state_file().exists():
        console.print("Nothing to stop.")
        return
    with _locked():
        state = _load_state()
        if not state:
            console.print("Nothing to stop.")
            return
        node, cluster = _kafka(state), _postgres(state)
        for server, label in ((node, "Kafka"), (cluster, "PostgreSQL")):
            if server.is_running():
                with console.status(f"Stopping {label}…"):
                    server.stop()
                console.print(f"{label} stopped")
            else:
                console.print(f"{label} was not running")
        if purge:
            shutil.rmtree(node.directory, ignore_errors=True)
            cluster.destroy()
            _state_file().unlink(missing_ok=True)
            console.print("Data directories and state removed")
        else:
            _record(state, node, cluster)
            _save_state(state)
