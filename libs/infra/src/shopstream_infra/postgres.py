"""A private PostgreSQL cluster (initdb + postgres) on 127.0.0.1, independent of any system cluster."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from shopstream_infra.errors import InfraError
from shopstream_infra.procs import (
    Proc,
    free_ports,
    pid_alive,
    pid_matches,
    port_is_free,
    register_cleanup,
    spawn,
    tail,
    unregister_cleanup,
)

HOST = "127.0.0.1"
SUPERUSER = "postgres"
_OS_USER = "postgres"
# sun_path is 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107


def find_bindir() -> Path:
    """Directory of initdb/postgres/psql: `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin.

    Debian's /usr/bin only has wrappers for the client tools, so initdb is usually not on PATH.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(Path(p) for p in versions)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    raise InfraError(
        "PostgreSQL server binaries not found (no initdb via pg_config or /usr/lib/postgresql/*/bin): "
        "apt-get install -y postgresql"
    )


def _server_user() -> pwd.struct_passwd | None:
    """The OS user to run the server as: postgres refuses to run as root, so root switches to it."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(_OS_USER)
    except KeyError as exc:
        raise InfraError(
            "running as root but there is no 'postgres' OS user (apt-get install -y postgresql creates it)"
        ) from exc


def reachable_by(user: pwd.struct_passwd | None, path: Path) -> bool:
    """Every existing ancestor of `path` can be traversed by `user` (None: the current user)."""
    if user is None:
        return True
    groups = {user.pw_gid} | {g for g in os.getgrouplist(user.pw_name, user.pw_gid)}
    for ancestor in [path, *path.parents]:
        try:
            st = ancestor.stat()
        except FileNotFoundError:
            continue
        if st.st_uid == user.pw_uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid in groups:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            return False
    return True


def data_dir_for(preferred_parent: Path) -> Path:
    """Where a long-lived cluster's data dir goes: `<preferred_parent>/data` if the server's OS user
    can reach it, else a stable per-checkout folder under /var/tmp.

    When root runs us, the server runs as `postgres`, which cannot enter e.g. a checkout under
    /root (0700). Rather than loosening permissions on someone's home, fall back to /var/tmp
    (world-traversable, and unlike /tmp not wiped at boot).
    """
    preferred = preferred_parent.resolve() / "data"
    if reachable_by(_server_user(), preferred):
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"shopstream-pg-{digest}" / "data"


_TEMP_PREFIX = "shopstream-pg-"
_OWNER_FILE = "owner.pid"


def temporary_data_dir() -> Path:
    """A fresh data dir for a throwaway cluster, e.g. a test session's.

    Under the system temp dir because the server's OS user must traverse every parent (pytest's
    own /tmp/pytest-of-root is 0700). Leftovers of owners that died without cleaning up (kill -9)
    are removed first.
    """
    _sweep_stale_temporary_dirs()
    base = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX))
    base.chmod(0o711)  # traversable, not listable
    (base / _OWNER_FILE).write_text(f"{os.getpid()}\n")
    return base / "data"


def remove_temporary_data_dir(data_dir: Path) -> None:
    base = data_dir.parent
    if base.name.startswith(_TEMP_PREFIX) and (base / _OWNER_FILE).is_file():
        shutil.rmtree(base, ignore_errors=True)


def _sweep_stale_temporary_dirs() -> None:
    for base in Path(tempfile.gettempdir()).glob(f"{_TEMP_PREFIX}*"):
        try:
            owner = int((base / _OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            continue
        if pid_alive(owner):
            continue
        cluster = PostgresCluster(base / "data", port=0)
        if cluster.adopt():  # its owner died but the kernel's SIGINT has not finished it yet
            cluster.stop(timeout=10)
        shutil.rmtree(base, ignore_errors=True)


class PostgresCluster:
    """One PostgreSQL server on 127.0.0.1 with trust auth for the `postgres` superuser.

    Durability settings stay at their defaults (fsync on, full_page_writes on): the event-store
    tests rely on them. The data dir (and its unix socket) survive `stop()`; `start()` reuses it.

    `ephemeral=True` ties the server to this Python process (stopped at exit, SIGINT'd by the
    kernel if this process dies) and skips initdb's final fsync, which only matters for a
    cluster that must survive a machine crash right after creation.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
        log_file: Path | None = None,
        ephemeral: bool = False,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port if port is not None else free_ports(1)[0]
        self.settings = dict(settings or {})
        self.log_file = log_file if log_file is not None else self.data_dir.parent / "postgres.log"
        self.ephemeral = ephemeral
        self.bindir = find_bindir()
        self._user = _server_user()
        self._proc: Proc | None = None

    # --- addresses --------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return HOST

    @property
    def user(self) -> str:
        return SUPERUSER

    def dsn(self, database: str = "postgres") -> str:
        """An asyncpg/libpq URL for `database` (trust auth, so no password)."""
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{database}"

    @property
    def socket_dir(self) -> Path | None:
        # Inside the data dir, never /var/run/postgresql, so no system cluster's socket is touched.
        if len(str(self.data_dir)) + len("/.s.PGSQL.65535") > _MAX_SOCKET_PATH:
            return None
        return self.data_dir

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.alive() else None

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def init(self) -> None:
        """initdb, unless the data dir already holds a cluster."""
        if self.initialized:
            return
        if not reachable_by(self._user, self.data_dir):
            raise InfraError(
                f"the '{_OS_USER}' OS user cannot reach {self.data_dir} (a parent directory lacks +x); "
                "use a data dir under /tmp or /var/tmp, or see shopstream_infra.postgres.data_dir_for"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            os.chown(self.data_dir, self._user.pw_uid, self._user.pw_gid)
        self.data_dir.chmod(0o700)
        cmd = [
            str(self.bindir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            # C collation: identical ordering on every machine, and no dependency on installed locales.
            "--locale=C",
            "--no-instructions",
        ]
        if self.ephemeral:
            cmd.append("--no-sync")
        result = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            user=self._user.pw_uid if self._user else None,
            group=self._user.pw_gid if self._user else None,
            extra_groups=[] if self._user else None,
            cwd="/",
            check=False,
        )
        if result.returncode != 0:
            raise InfraError(f"initdb failed for {self.data_dir}:\n{result.stdout}{result.stderr}")

    def _read_postmaster_pid(self) -> list[str]:
        try:
            return (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return []

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.alive()

    def adopt(self) -> bool:
        """Take over a server started earlier (by the CLI) from its postmaster.pid; False if none runs."""
        lines = self._read_postmaster_pid()
        if not lines or not lines[0].strip().isdigit():
            return False
        pid = int(lines[0])
        # A stale postmaster.pid after a reboot may name an unrelated process by now.
        if not pid_matches(pid, str(self.data_dir)):
            return False
        self._proc = Proc(pid)
        if len(lines) > 3 and lines[3].strip().isdigit():
            self.port = int(lines[3])
        return True

    def start(self, timeout: float = 60.0) -> None:
        """initdb if needed, start the server, and return once it accepts connections."""
        if self.is_running():
            return
        if not port_is_free(self.port):
            raise InfraError(f"port {HOST}:{self.port} for PostgreSQL {self.data_dir} is already in use")
        self.init()
        options = {
            "listen_addresses": HOST,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir) if self.socket_dir else "",
            # Conformance suites open pools for many concurrent writers.
            "max_connections": "200",
            **self.settings,
        }
        cmd = [str(self.bindir / "postgres"), "-D", str(self.data_dir)]
        for key, value in options.items():
            cmd += ["-c", f"{key}={value}"]
        with self.log_file.open("a") as log:
            log.write(f"\n===== starting PostgreSQL at {time.strftime('%Y-%m-%d %H:%M:%S')} =====\n")
        popen = spawn(
            cmd,
            log_file=self.log_file,
            cwd=Path("/"),
            user=self._user.pw_name if self._user else None,
            # Fast shutdown: the postmaster terminates its backends and checkpoints.
            die_with_parent=signal.SIGINT if self.ephemeral else None,
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
        while True:
            if not self._proc.alive():
                raise InfraError(
                    f"PostgreSQL exited during startup (code {self._proc.returncode()}); "
                    f"last lines of {self.log_file}:\n{tail(self.log_file)}"
                )
            lines = self._read_postmaster_pid()
            # Line 8 is the postmaster status, "ready" once it accepts connections (what pg_ctl -w polls).
            if len(lines) >= 8 and lines[7].strip() == "ready" and self._accepts_tcp():
                return
            if time.monotonic() > deadline:
                raise InfraError(
                    f"PostgreSQL not ready on {HOST}:{self.port} within {timeout:.0f}s; "
                    f"last lines of {self.log_file}:\n{tail(self.log_file)}"
                )
            time.sleep(0.05)

    def _accepts_tcp(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT: disconnect clients, checkpoint); immediate, then SIGKILL, on timeout."""
        if self._proc is not None and self._proc.alive():
            # Only the postmaster: signalling the group would also cancel the backends' queries.
            self._proc.send(signal.SIGINT, group=False)
            if not self._proc.wait_gone(timeout):
                self._proc.send(signal.SIGQUIT, group=False)
                if not self._proc.wait_gone(5):
                    self._proc.kill()
        unregister_cleanup(self)

    def kill(self) -> None:
        """SIGKILL the server and its backends, as a crash would (WAL recovery on the next start)."""
        if self._proc is not None:
            self._proc.kill()
        unregister_cleanup(self)

    def destroy(self) -> None:
        """Stop, then delete the data dir and log (and their parent if that leaves it empty)."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.log_file.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.data_dir.parent.rmdir()

    # --- databases --------------------------------------------------------------------------

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through psql over TCP (works from sync and async code alike, unlike a driver call)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGCONNECT_TIMEOUT"] = "10"
        result = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                HOST,
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if result.returncode != 0:
            raise InfraError(f"psql failed on {database!r}: {result.stderr.strip()}\nSQL: {sql}")
        return result.stdout

    def create_database(self, name: str) -> str:
        """Create `name` and return its DSN."""
        self.psql(f"CREATE DATABASE {_quote_ident(name)}")
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running() else "stopped"
        return f"PostgresCluster({HOST}:{self.port}, {self.data_dir}, {state})"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
