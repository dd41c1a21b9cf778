"""Real child processes for fault tests: start a Python entry point, kill -9 it, restart it.

Every process started here is killed at teardown even when the test fails, so a test run
never leaves one behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


class ChildProcess:
    def __init__(self, args: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.args = [sys.executable, *args]
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ChildProcess:
        if self.running:
            raise RuntimeError(f"{self.args} is already running")
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("not started")
        return self._proc.pid

    def kill9(self) -> None:
        """SIGKILL the whole process group: no shutdown hook runs, like a crashed pod."""
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(10)

    def terminate(self, timeout: float = 15.0) -> int:
        if self._proc is None:
            return 0
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self._proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def child_processes() -> Iterator[list[ChildProcess]]:
    """Collects children started in a test and kills whatever is still running at the end."""
    children: list[ChildProcess] = []
    try:
        yield children
    finally:
        for child in children:
            child.kill9()
