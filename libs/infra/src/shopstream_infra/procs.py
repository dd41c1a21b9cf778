"""Process plumbing shared by Kafka and PostgreSQL: ports, spawning, stopping, and cleanup at exit."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

_PR_SET_PDEATHSIG = 1
# Resolved before any fork: loading a library between fork and exec can deadlock on the loader lock.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports the kernel considers free right now, all distinct.

    The sockets stay open until every port is picked so the kernel cannot hand out the same
    port twice; another process may still grab one before we bind it (accepted: loopback only).
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the servers use, so a port in TIME_WAIT from our own previous run counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _die_with_parent_hook(sig: int) -> Callable[[], None]:
    parent = os.getpid()

    def hook() -> None:
        # Runs in the child between fork and exec (after any uid change, which would reset it).
        _prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def spawn(
    argv: Sequence[str],
    *,
    log_file: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    user: str | None = None,
    die_with_parent: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server in its own session (own process group) with stdout+stderr appended to log_file.

    Its own session keeps a terminal's Ctrl-C away from it, so the owner can stop things in order.
    `die_with_parent` is a signal the kernel sends it if this Python process dies, even by SIGKILL;
    it is tied to the calling *thread*, so call from a long-lived thread when using it.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            user=user,
            group=user,
            extra_groups=[] if user is not None else None,
            start_new_session=True,
            preexec_fn=_die_with_parent_hook(die_with_parent) if die_with_parent is not None else None,
        )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # A zombie still has a pid but is gone for our purposes (its parent just has not reaped it).
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def pid_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pid_matches(pid: int, needle: str) -> bool:
    """The pid is alive and still the process we started (pids get reused after reboots)."""
    return pid_alive(pid) and needle in pid_cmdline(pid)


class Proc:
    """A server process we either spawned (Popen) or found again by pid (a later CLI call)."""

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self._popen = popen

    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return pid_alive(self.pid)

    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def send(self, sig: int, *, group: bool = True) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                # The whole group: a server's helper processes go with it.
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)

    def wait_gone(self, timeout: float) -> bool:
        if self._popen is not None:
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(0.05)
        return not self.alive()

    def stop(self, sig: int, timeout: float, *, group: bool = True) -> bool:
        """`sig`, wait up to `timeout`, then SIGKILL. True when the graceful signal was enough."""
        if not self.alive():
            return True
        self.send(sig, group=group)
        if self.wait_gone(timeout):
            return True
        self.kill()
        return False

    def kill(self) -> None:
        if self.alive():
            self.send(signal.SIGKILL)
            self.wait_gone(10)


def tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(data.splitlines()[-lines:])


# --- cleanup of everything this process owns --------------------------------------------------

_cleanups: dict[int, Callable[[], None]] = {}
_cleanups_lock = threading.Lock()


def register_cleanup(key: object, fn: Callable[[], None]) -> None:
    """Run `fn` at interpreter exit unless `unregister_cleanup(key)` is called first."""
    with _cleanups_lock:
        _cleanups[id(key)] = fn


def unregister_cleanup(key: object) -> None:
    with _cleanups_lock:
        _cleanups.pop(id(key), None)


@atexit.register
def _run_cleanups() -> None:
    with _cleanups_lock:
        pending = list(_cleanups.values())
        _cleanups.clear()
    for fn in reversed(pending):
        with contextlib.suppress(Exception):
            fn()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"received signal {signal.Signals(signum).name}")


def install_signal_handlers() -> None:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt so `finally` blocks, fixtures and atexit still run.

    Only replaces default dispositions and only from the main thread; a host that installed its own
    handlers keeps them.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _raise_interrupt)
