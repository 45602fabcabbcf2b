"""Start-up against PostgreSQL and Redis: migrations, schema checks, unreachable servers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from storage.migrations import latest
from tests.servers import PostgresServer, free_port
from tests.test_cli import ess

LATEST = latest("postgres")


def test_db_migrate_then_up_to_date(tmp_path: Path, pg_server: PostgresServer) -> None:
    url = pg_server.new_database(migrated=False)
    first = ess(tmp_path, "db", "migrate", env={"ESS_DATABASE_URL": url})
    assert first.returncode == 0, first.stderr
    assert f"migrated from schema version 0 to {LATEST}" in first.stdout
    again = ess(tmp_path, "db", "migrate", env={"ESS_DATABASE_URL": url})
    assert again.returncode == 0 and f"up to date (schema version {LATEST})" in again.stdout


def test_serve_refuses_a_database_behind_the_code(tmp_path: Path,
                                                  pg_server: PostgresServer) -> None:
    url = pg_server.new_database(migrated=False)
    run = ess(tmp_path, "serve", env={"ESS_DATABASE_URL": url, "ESS_PORT": str(free_port())})
    assert run.returncode == 2
    assert "the database lacks schema version(s) 1, 20," in run.stderr
    assert ": run `ess db migrate` first" in run.stderr and "Traceback" not in run.stderr


def test_a_migration_numbered_below_the_newest_is_applied_on_upgrade(
        tmp_path: Path, pg_server: PostgresServer) -> None:
    """Features land in any order: a database at 0110 gets 0100 from the next release."""
    url = pg_server.new_database(migrated=False)
    assert ess(tmp_path, "db", "migrate", env={"ESS_DATABASE_URL": url}).returncode == 0

    async def sql(statement: str) -> object:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval(statement)
        finally:
            await conn.close()

    # As a database migrated by a release that had 0110 but not 0100.
    asyncio.run(sql("DROP FUNCTION ess_journal_claim"))
    asyncio.run(sql("DELETE FROM schema_migrations WHERE version = 100"))
    run = ess(tmp_path, "serve", env={"ESS_DATABASE_URL": url, "ESS_PORT": str(free_port())})
    assert run.returncode == 2
    assert "the database lacks schema version(s) 100: run `ess db migrate` first" in run.stderr
    assert ess(tmp_path, "db", "migrate", env={"ESS_DATABASE_URL": url}).returncode == 0
    assert asyncio.run(sql("SELECT count(*) FROM pg_proc WHERE proname = 'ess_journal_claim'")) \
        == 1
    assert asyncio.run(sql("SELECT count(*) FROM schema_migrations WHERE version = 100")) == 1


def test_serve_refuses_a_database_ahead_of_the_code(tmp_path: Path, pg_url: str) -> None:
    async def from_the_future() -> None:
        conn = await asyncpg.connect(pg_url)
        await conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', now())")
        await conn.close()

    asyncio.run(from_the_future())
    for args in (("serve",), ("db", "migrate")):
        run = ess(tmp_path, *args, env={"ESS_DATABASE_URL": pg_url,
                                        "ESS_PORT": str(free_port())})
        assert run.returncode == 2, args
        assert f"schema version 999, but this code knows only up to {LATEST}" in run.stderr


def test_unreachable_servers_are_one_clear_line(tmp_path: Path, pg_url: str) -> None:
    port = free_port()  # nothing listens there
    run = ess(tmp_path, "serve", env={
        "ESS_DATABASE_URL": f"postgresql://ess:s3cret@127.0.0.1:{port}/ess",
        "ESS_STORE_TIMEOUT": "2"})
    assert run.returncode == 2
    assert f"ess: cannot reach PostgreSQL at 127.0.0.1:{port}/ess (ESS_DATABASE_URL)" \
        in run.stderr
    assert "s3cret" not in run.stderr and "Traceback" not in run.stderr
    run = ess(tmp_path, "serve", env={
        "ESS_DATABASE_URL": pg_url, "ESS_STORE_TIMEOUT": "2",
        "ESS_REDIS_URL": f"redis://:s3cret@127.0.0.1:{port}/0"})
    assert run.returncode == 2
    assert f"ess: cannot reach Redis at 127.0.0.1:{port}/0 (ESS_REDIS_URL)" in run.stderr
    assert "s3cret" not in run.stderr and "Traceback" not in run.stderr


def test_redis_needs_postgres(tmp_path: Path) -> None:
    run = ess(tmp_path, "serve", env={"ESS_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert run.returncode == 2 and "ESS_REDIS_URL needs ESS_DATABASE_URL" in run.stderr
