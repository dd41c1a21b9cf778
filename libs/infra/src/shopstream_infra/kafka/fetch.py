"""Resolve a runnable Apache Kafka broker (jars) from Maven Central into the cache, once."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from shopstream_infra.errors import InfraError
from shopstream_infra.paths import cache_root

_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
_MARKER = ".complete"


def pom_bytes() -> bytes:
    return resources.files("shopstream_infra.kafka").joinpath("pom.xml").read_bytes()


def kafka_version() -> str:
    """The broker version pinned in the shipped pom.xml."""
    node = ET.fromstring(pom_bytes()).find("m:properties/m:kafka.version", _POM_NS)
    if node is None or not node.text:
        raise InfraError("kafka/pom.xml has no <kafka.version> property")
    return node.text.strip()


def kafka_home(version: str | None = None) -> Path:
    return cache_root() / "kafka" / (version or kafka_version())


def kafka_libs_dir(version: str | None = None) -> Path:
    return kafka_home(version) / "libs"


def _pom_digest() -> str:
    return hashlib.sha256(pom_bytes()).hexdigest()


def kafka_libs_ready(version: str | None = None) -> bool:
    """Fetched completely from the current pom.xml (a changed pom, e.g. a log4j bump, refetches)."""
    marker = kafka_home(version) / _MARKER
    try:
        return marker.read_text().strip() == _pom_digest()
    except OSError:
        return False


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    # Parallel pytest workers or a CLI racing a test run must not interleave two Maven runs.
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise InfraError("Java 17+ is required to run Kafka: apt-get install -y openjdk-17-jre-headless")
    return found


def ensure_kafka_libs(*, force: bool = False) -> Path:
    """The folder of broker jars, downloading them with Maven the first time. Idempotent.

    The marker file is written last, so an interrupted download is simply redone.
    """
    version = kafka_version()
    home = kafka_home(version)
    libs = home / "libs"
    if not force and kafka_libs_ready(version):
        return libs
    with _exclusive(home / ".lock"):
        if not force and kafka_libs_ready(version):  # another process finished while we waited
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise InfraError(
                "Maven (mvn) is required to fetch Kafka from Maven Central: apt-get install -y maven"
            )
        (home / _MARKER).unlink(missing_ok=True)
        (home / "pom.xml").write_bytes(pom_bytes())
        partial = home / "libs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-Dstyle.color=never",
                "-f",
                str(home / "pom.xml"),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={partial}",
            ],
            cwd=home,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()[-4000:]
            raise InfraError(f"Maven could not resolve Kafka {version} (exit {result.returncode}):\n{output}")
        if not (partial / f"kafka_2.13-{version}.jar").is_file():
            raise InfraError(f"Maven finished but kafka_2.13-{version}.jar is missing in {partial}")
        shutil.rmtree(libs, ignore_errors=True)
        partial.rename(libs)
        (home / _MARKER).write_text(_pom_digest() + "\n")
    return libs
