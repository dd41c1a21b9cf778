"""Real child processes for fault tests: start a Python entry point, kill -9 it, restart it.

Every process started here dies with the test run (the kernel's parent-death signal), and
``child_processes`` kills whatever is left at the end of a test even when it fails.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from shopstream_infra.procs import Proc, spawn, tail


class ChildProcess:
    def __init__(self, args: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.args = [sys.executable, *args]
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self._proc: Proc | None = None

    def start(self) -> ChildProcess:
        if self.running:
            raise RuntimeError(f"{self.args} is already running")
        popen = spawn(self.args, log_file=self.log_path, env=self.env, die_with_parent=signal.SIGKILL)
        self._proc = Proc(popen.pid, popen)
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.alive()

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("not started")
        return self._proc.pid

    def kill9(self) -> None:
        """SIGKILL the whole process group: no shutdown hook runs, like a crashed pod."""
        if self._proc is not None:
            self._proc.kill()

    def terminate(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``: a rolling restart."""
        if self._proc is not None:
            self._proc.stop(signal.SIGTERM, timeout)

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)


@contextmanager
def child_processes() -> Iterator[list[ChildProcess]]:
    """Collects children started in a test and kills whatever is still running at the end."""
    children: list[ChildProcess] = []
    try:
        yield children
    finally:
        for child in children:
            child.kill9()
