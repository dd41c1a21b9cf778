"""A KurrentDB server for the event-store conformance suite, when one can be had.

``KURRENTDB_URL`` names a running server. Without it, on a machine with a Docker engine,
testcontainers starts a single insecure KurrentDB node for the session. Without either, there
is no server and the KurrentDB cases are reported as skipped.
"""

from __future__ import annotations

import importlib
import os
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

IMAGE = "kurrentplatform/kurrentdb:25.1.0"
"""Multi-stream append (our append_many) needs 25.1 or later; the same tag as docker-compose.yml."""


def docker_engine_available() -> bool:
    try:
        # Imported by name: the docker SDK ships no type information, and only this call needs it.
        docker = importlib.import_module("docker")
        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@contextmanager
def kurrentdb_server(timeout: float = 120.0) -> Iterator[str | None]:
    """The URL of a KurrentDB server for this session, or None when none can be had."""
    configured = os.environ.get("KURRENTDB_URL")
    if configured:
        yield configured
        return
    if not docker_engine_available():
        yield None
        return
    from testcontainers.core.container import DockerContainer

    container = (
        DockerContainer(IMAGE)
        .with_env("KURRENTDB_INSECURE", "true")
        .with_env("KURRENTDB_RUN_PROJECTIONS", "None")
        # The conformance suite appends a 1 MB event; the default limit is 1 MiB per append.
        .with_env("KURRENTDB_MAX_APPEND_SIZE", "4194304")
        .with_exposed_ports(2113)
    )
    container.start()
    try:
        host, port = container.get_container_host_ip(), container.get_exposed_port(2113)
        _wait_live(f"http://{host}:{port}/health/live", timeout)
        yield f"kurrentdb://{host}:{port}?tls=false"
    finally:
        container.stop()


def _wait_live(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status < 300:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"KurrentDB did not answer {url} within {timeout:g}s")
        time.sleep(0.5)
