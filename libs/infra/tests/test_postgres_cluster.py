"""A private PostgreSQL cluster: starts, creates databases, serves asyncpg, survives stop/kill + restart."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest

from shopstream_infra import PostgresCluster, remove_temporary_data_dir, temporary_data_dir

pytestmark = pytest.mark.integration


async def test_fresh_database_per_test_over_asyncpg(postgres_dsn: str) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        assert await conn.fetchval("SHOW fsync") == "on"
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
        await conn.execute("CREATE TABLE t (v text)")
        await conn.execute("INSERT INTO t VALUES ('x')")
        assert await conn.fetchval("SELECT v FROM t") == "x"
    finally:
        await conn.close()


@pytest.fixture
def own_cluster() -> Iterator[PostgresCluster]:
    data_dir = temporary_data_dir()
    cluster = PostgresCluster(data_dir, ephemeral=True)
    try:
        yield cluster
    finally:
        cluster.stop()
        remove_temporary_data_dir(data_dir)
    assert not data_dir.exists()


async def _count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM t"))
    finally:
        await conn.close()


async def test_data_survives_stop_and_kill(own_cluster: PostgresCluster) -> None:
    own_cluster.start()
    dsn = own_cluster.create_database("durable")
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE t (v int)")
    await conn.execute("INSERT INTO t SELECT generate_series(1, 100)")
    await conn.close()

    own_cluster.stop()
    assert not own_cluster.is_running()
    with pytest.raises(ConnectionRefusedError):
        await asyncpg.connect(dsn, timeout=2)
    own_cluster.start()
    assert await _count(dsn) == 100

    conn = await asyncpg.connect(dsn)
    await conn.execute("INSERT INTO t VALUES (101)")  # committed with fsync on, so it must survive a crash
    own_cluster.kill()
    own_cluster.start()
    assert await _count(dsn) == 101

    own_cluster.drop_database("durable")
    assert own_cluster.psql("SELECT count(*) FROM pg_database WHERE datname = 'durable'").strip() == "0"
