"""The embedded store: WAL, migrations that refuse a newer database, sealed personal data."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.services import Services
from bot.wiring import open_services
from config.settings import Settings
from storage.crypto import Sealer, SealError
from storage.ports import SchemaMismatch
from storage.sqlite import SQLiteStorage
from tests.helpers import choice, pin, start, text


async def test_personal_data_is_sealed_at_rest(services: Services, settings: Settings) -> None:
    e = services.engine
    await e.handle(start("u"))
    await e.handle(choice("u", "threat"))
    await e.handle(pin("u", 16.82113, 100.26594))
    await e.handle(text("u", "081-234-5678"))
    await e.handle(choice("u", "send"))
    await services.close()
    raw = b"".join(p.read_bytes() for p in settings.sqlite_path.parent.glob("ess.db*"))
    for needle in (b"812345678", b"16.82113", b"100.26594", b"threat\x00"):
        assert needle not in raw, needle
    assert b"threat" in raw  # the type is not personal data: statistics need it in clear


async def test_wal_and_reopen_is_idempotent(tmp_path: Path) -> None:
    sealer = Sealer([b"k" * 32])
    store = await SQLiteStorage.open(tmp_path / "a.db", sealer)
    await store.close()
    store = await SQLiteStorage.open(tmp_path / "a.db", sealer)
    await store.close()
    conn = sqlite3.connect(tmp_path / "a.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == sorted(set(versions)) and versions[0] == 1


async def test_a_database_ahead_of_the_code_is_refused(tmp_path: Path) -> None:
    store = await SQLiteStorage.open(tmp_path / "a.db", Sealer([b"k" * 32]))
    await store.close()
    conn = sqlite3.connect(tmp_path / "a.db")
    conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaMismatch, match="schema version 999"):
        await SQLiteStorage.open(tmp_path / "a.db", Sealer([b"k" * 32]))


async def test_a_migration_numbered_below_the_newest_is_applied_on_open(tmp_path: Path) -> None:
    """Features land in any order: a database at 0120 gets 0110 when it next opens."""
    store = await SQLiteStorage.open(tmp_path / "a.db", Sealer([b"k" * 32]))
    await store.close()
    conn = sqlite3.connect(tmp_path / "a.db")
    conn.execute("DROP TABLE menus")  # as migrated by a release that had 0120 but not 0110
    conn.execute("DELETE FROM schema_migrations WHERE version = 110")
    conn.commit()
    conn.close()
    store = await SQLiteStorage.open(tmp_path / "a.db", Sealer([b"k" * 32]))
    await store.close()
    conn = sqlite3.connect(tmp_path / "a.db")
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'menus'").fetchone() \
        == (1,)
    assert conn.execute("SELECT name FROM schema_migrations WHERE version = 110").fetchone() \
        == ("menus",)
    conn.close()


async def test_a_wrong_key_does_not_open_sealed_data(settings: Settings) -> None:
    services = await open_services(settings)
    await services.engine.handle(start("u"))
    await services.close()
    key_file = Path(settings.data_dir) / "secret.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    # Sessions are keyed by a keyed hash: another key finds nothing, and opens nothing.
    store = await SQLiteStorage.open(settings.sqlite_path, Sealer([b"x" * 32]))
    try:
        assert (await store.sessions.load("test:u", "e")).session is None
    finally:
        await store.close()
    [(blob,)] = sqlite3.connect(settings.sqlite_path).execute("SELECT data FROM sessions")
    with pytest.raises(SealError):
        Sealer([b"x" * 32]).open(blob)


def test_sealer_rotates_keys() -> None:
    old, new = Sealer([b"o" * 32]), Sealer([b"n" * 32, b"o" * 32])
    blob = old.seal(b"+66812345678")
    assert new.open(blob) == b"+66812345678"
    assert new.open(new.seal(b"x")) == b"x"
    with pytest.raises(SealError):
        old.open(new.seal(b"x"))


def test_shipped_migrations_have_distinct_numbers() -> None:
    from storage.migrations import migrations

    versions = [m.version for m in migrations("sqlite")]
    assert versions == sorted(set(versions))
