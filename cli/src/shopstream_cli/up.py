"""`shopstream up`: the whole platform on this machine until Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
import tempfile
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .platform import Platform, PlatformError, Store

console = Console()


def up(
    store: Annotated[str, typer.Option(help="sqlite (embedded, a file per service) or postgres.")] = "sqlite",
    workdir: Annotated[
        Path | None, typer.Option(help="Where data and logs go (default: a fresh temporary folder).")
    ] = None,
    clock_control: Annotated[bool, typer.Option(help="Let admins move the services' clocks.")] = False,
) -> None:
    """Start local Kafka and all five services as separate processes; stop everything on Ctrl-C."""
    if store not in ("sqlite", "postgres"):
        raise typer.BadParameter("use sqlite or postgres", param_hint="--store")
    chosen: Store = "postgres" if store == "postgres" else "sqlite"
    folder = workdir or Path(tempfile.mkdtemp(prefix="shopstream-up-"))
    platform = Platform(folder, store=chosen, clock_control=clock_control)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with console.status("Starting Kafka and the five services…"):
            platform.start()
        table = Table(title="Shopstream is up")
        for column in ("service", "API", "OpenAPI", "log"):
            table.add_column(column)
        for name, service in platform.services.items():
            table.add_row(name, service.url, f"{service.url}/docs", str(service.log_file))
        console.print(table)
        assert platform.kafka is not None
        console.print(f"Kafka: [bold]{platform.kafka.bootstrap_servers}[/]   data: {folder}")
        console.print("Tokens: [bold]shopstream token mint --subject usr_ana --role influencer[/]")
        console.print("Ctrl-C stops everything.")
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    except PlatformError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    finally:
        with console.status("Stopping…"):
            platform.stop()
