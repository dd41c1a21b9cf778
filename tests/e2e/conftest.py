"""The whole platform for end-to-end tests: Kafka and the five services as separate processes,
once with the embedded SQLite stores and once with PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shopstream_cli.platform import Platform, Store, running_platform


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def platform(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    store: Store = request.param
    workdir: Path = tmp_path_factory.mktemp(f"platform-{store}")
    with running_platform(workdir, store=store, clock_control=True) as running:
        yield running
