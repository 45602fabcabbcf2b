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
import structlog

from config.settings import Settings
from storage.audit import GENESIS, AuditEntry, Head, _advance_file, head_file, parse_head
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


# The chain's end, anchored outside the table (storage/audit.py): removing the last rows is
# named; the anchor only moves forward; a head noted elsewhere catches an anchor rewound too.

async def _anchor_file_gone_or_rewound(backend_settings: Settings) -> None:
    """What an intruder who also reaches the anchor does: remove it."""
    if backend_settings.database_url:
        conn = await asyncpg.connect(backend_settings.database_url)
        try:
            await conn.execute("ALTER TABLE audit_head DISABLE TRIGGER USER")
            await conn.execute("DELETE FROM audit_head")
            await conn.execute("ALTER TABLE audit_head ENABLE TRIGGER USER")
        finally:
            await conn.close()
    else:
        head_file(backend_settings.sqlite_path).unlink()


async def test_the_anchor_follows_every_append_and_is_logged(
        store: Storage, backend_settings: Settings) -> None:
    with structlog.testing.capture_logs() as logs:
        await _fill(store, 3)
        await store.incidents.record_access("cli", "incident.show", "ESS-7K3F9")
    rows = await store.audit.records()
    assert await store.audit.anchor() == Head(4, str(rows[-1].hash))
    heads = [e for e in logs if e["event"] == "audit.head"]
    assert [(e["seq"], e["head"]) for e in heads] == [(r.seq, r.hash) for r in rows]
    assert all(set(e) == {"event", "log_level", "seq", "head"} for e in heads)
    verdict = await store.audit.verify()
    assert verdict.intact and verdict.anchored == 4 and verdict.head_seq == 4
    if not backend_settings.database_url:
        assert head_file(backend_settings.sqlite_path).stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("removed", [1, 2])
async def test_deleting_the_last_rows_is_named(store: Storage, tamper: Tamper,
                                               removed: int) -> None:
    await _fill(store)
    await tamper(f"DELETE FROM audit WHERE seq > {5 - removed}")
    verdict = await store.audit.verify()
    assert verdict.broken_at == 6 - removed
    tail = "row 5" if removed == 1 else "rows 4…5"
    assert f"{tail} missing" in verdict.reason and "ends at row" in verdict.reason


async def test_the_anchor_cannot_go_backwards(store: Storage, tamper: Tamper,
                                              backend_settings: Settings) -> None:
    await _fill(store)
    [*_, fourth, fifth] = await store.audit.records()
    if backend_settings.database_url:
        conn = await asyncpg.connect(backend_settings.database_url)
        try:
            for sql in ("UPDATE audit_head SET seq = 3", "DELETE FROM audit_head",
                        "TRUNCATE audit_head"):
                with pytest.raises(asyncpg.RaiseError, match="only moves forward"):
                    await conn.execute(sql)
        finally:
            await conn.close()
    else:
        assert not _advance_file(head_file(backend_settings.sqlite_path), Head(3, "0" * 64))
    # The table's tail removed, then appends go on: the anchor stays where the chain was.
    await tamper("DELETE FROM audit WHERE seq > 3")
    with structlog.testing.capture_logs() as logs:
        await store.audit.append(AuditEntry("officer:9", "incident.show"))
    assert [e["event"] for e in logs] == ["audit.head_behind"]
    assert await store.audit.anchor() == Head(5, str(fifth.hash))
    verdict = await store.audit.verify()
    assert verdict.broken_at == 5 and "row 5 missing" in verdict.reason
    await store.audit.append(AuditEntry("officer:9", "incident.show"))
    verdict = await store.audit.verify()  # as long again, but not the same rows
    assert verdict.broken_at == 5 and "anchor recorded" in verdict.reason
    assert fourth.hash != (await store.audit.records())[3].hash
    await store.audit.append(AuditEntry("officer:9", "incident.show"))
    assert (await store.audit.anchor() or Head(0, "")).seq == 6  # forward again


async def test_a_head_noted_elsewhere_catches_a_removed_anchor(
        store: Storage, tamper: Tamper, backend_settings: Settings) -> None:
    await _fill(store)
    noted = Head(5, str((await store.audit.records())[-1].hash)[:16])  # as verify prints it
    assert (await store.audit.verify([noted])).intact
    await tamper("DELETE FROM audit WHERE seq > 3")
    await _anchor_file_gone_or_rewound(backend_settings)
    assert (await store.audit.verify()).intact  # the shorter chain, with nothing to hold it
    verdict = await store.audit.verify([noted])
    assert verdict.broken_at == 4 and "rows 4…5 missing" in verdict.reason
    wrong = Head(3, "f" * 16)
    verdict = await store.audit.verify([wrong])
    assert verdict.broken_at == 3 and "anchor recorded" in verdict.reason


@pytest.mark.parametrize("text", ["", "5", "x:abc", "5:xyz", "0:" + "a" * 16, "5:" + "a" * 15])
def test_a_noted_head_that_is_not_seq_colon_hash_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="SEQ:HASH"):
        parse_head(text)
