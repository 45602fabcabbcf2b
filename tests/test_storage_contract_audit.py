"""The audit trail on every backend: append-only, hash-chained, tampering detected.

Tampering is done the way an intruder with database access would: the append-only triggers
are dropped (SQLite) or disabled (PostgreSQL) first, then a row is edited, deleted or forged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from itertools import pairwise

import asyncpg
import pytest

from config.settings import Settings
from storage.audit import GENESIS, AuditEntry
from storage.ports import Storage
from tests import test_storage_contract as contract

backend_settings, store, dump = contract.backend_settings, contract.store, contract.dump
Tamper = Callable[[str], Awaitable[None]]


@pytest.fixture
def tamper(backend_settings: Settings) -> Tamper:
    """Run raw SQL against the audit table with its protection removed."""
    async def run(sql: str) -> None:
        if backend_settings.database_url:
            conn = await asyncpg.connect(backend_settings.database_url)
            try:
                await conn.execute("ALTER TABLE audit DISABLE TRIGGER USER")
                await conn.execute(sql.replace("?", "NULL"))
                await conn.execute("ALTER TABLE audit ENABLE TRIGGER USER")
            finally:
                await conn.close()
        else:
            conn = sqlite3.connect(backend_settings.sqlite_path)
            try:
                conn.executescript("DROP TRIGGER IF EXISTS audit_no_update; "
                                   "DROP TRIGGER IF EXISTS audit_no_delete;"
                                   + sql.replace("?", "NULL") + ";")
                conn.commit()
            finally:
                conn.close()
    return run


async def _fill(store: Storage, n: int = 5) -> None:
    for i in range(n):
        await store.audit.append(AuditEntry(f"officer:{i}", "incident.show",
                                            subject=f"S-{i}", reference=f"ESS-AAAA{i}"))


async def test_rows_chain_and_verify(store: Storage) -> None:
    assert (await store.audit.verify()).intact  # empty is intact
    await _fill(store)
    await store.incidents.record_access("cli", "incident.show", "ESS-7K3F9")
    rows = await store.audit.records()
    assert [r.seq for r in rows] == list(range(1, 7))
    assert rows[0].prev == GENESIS
    assert all(b.prev == a.hash for a, b in pairwise(rows))
    verdict = await store.audit.verify()
    assert verdict.intact and verdict.rows == 6 and verdict.head == rows[-1].hash
    found = await store.audit.find(subject="S-2")
    assert [r.entry.actor for r in found] == ["officer:2"]
    assert [r.entry.subject for r in await store.audit.find(staff="officer:3")] == ["S-3"]
    assert [r.seq for r in await store.audit.find(reference="ESS-7K3F9")] == [6]


async def test_the_store_refuses_update_and_delete(store: Storage,
                                                   backend_settings: Settings) -> None:
    await _fill(store, 2)
    if backend_settings.database_url:
        conn = await asyncpg.connect(backend_settings.database_url)
        try:
            for sql in ("UPDATE audit SET actor = 'x'", "DELETE FROM audit",
                        "TRUNCATE audit"):
                with pytest.raises(asyncpg.RaiseError, match="append-only"):
                    await conn.execute(sql)
        finally:
            await conn.close()
    else:
        conn = sqlite3.connect(backend_settings.sqlite_path)
        try:
            for sql in ("UPDATE audit SET actor = 'x'", "DELETE FROM audit"):
                with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                    conn.execute(sql)
        finally:
            conn.close()
    assert (await store.audit.verify()).intact


@pytest.mark.parametrize("sql, reason", [
    ("UPDATE audit SET actor = 'officer:9' WHERE seq = 3", "edited"),
    ("UPDATE audit SET at = at + 1 WHERE seq = 3", "edited"),
    ("DELETE FROM audit WHERE seq = 3", "missing"),
    ("UPDATE audit SET hash = ? WHERE seq = 3", "without a hash"),
])
async def test_tampering_is_named(store: Storage, tamper: Tamper, sql: str,
                                  reason: str, backend_settings: Settings) -> None:
    await _fill(store)
    if backend_settings.database_url and "at + 1" in sql:
        sql = sql.replace("at + 1", "at + interval '1 second'")
    await tamper(sql)
    verdict = await store.audit.verify()
    assert verdict.broken_at == (4 if "DELETE" in sql else 3)
    assert reason in verdict.reason


async def test_a_forged_row_is_detected(store: Storage, tamper: Tamper) -> None:
    await _fill(store, 3)
    rows = await store.audit.records()
    # Renumber the last row and slip a forged one (linked by hand, but without the key) in.
    await tamper("UPDATE audit SET seq = 10 WHERE seq = 3")
    await tamper("INSERT INTO audit (seq, at, actor, action, subject, reference, detail, prev, "
                 f"hash) SELECT 3, at, 'intruder', 'nothing', '', '', '', '{rows[1].hash}', "
                 f"'{'f' * 64}' FROM audit WHERE seq = 2")
    await tamper("UPDATE audit SET seq = 4 WHERE seq = 10")
    verdict = await store.audit.verify()
    assert verdict.broken_at == 3 and "edited" in verdict.reason


async def test_audit_rows_hold_no_personal_data(store: Storage, dump: contract.Dump) -> None:
    await store.audit.append(AuditEntry("officer:1", "subject.find", subject="S-abc",
                                        detail="by phone"))
    await store.close()
    assert contract.PHONE.encode() not in await dump()
