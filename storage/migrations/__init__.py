"""Versioned SQL migrations: `<backend>/NNNN_name.sql`, applied in order, recorded by number.

Each feature takes its own block of numbers (0020, 0030, ... with gaps), and features land in
any order: a release may bring 0100 to a database that already has 0110. So a database is up
to date when every shipped number is recorded, not when its highest number is the code's; the
migrators apply each missing one, in number order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from storage.ports import SchemaMismatch

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(backend: str) -> list[Migration]:
    """The migrations shipped for `backend`, in order."""
    found = []
    for path in sorted((Path(__file__).parent / backend).glob("*.sql")):
        match = _FILE.match(path.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        # Two branches each adding "0003_..." would otherwise fail at some user's start-up.
        dupes = sorted({v for v in versions if versions.count(v) > 1})
        raise SchemaMismatch(f"{backend} migrations share version numbers: {dupes}")
    return found


def missing(backend: str, applied: set[int]) -> list[Migration]:
    """The shipped migrations not in `applied`, in order."""
    return [m for m in migrations(backend) if m.version not in applied]


def latest(backend: str) -> int:
    return max((m.version for m in migrations(backend)), default=0)


def check_version(backend: str, current: int) -> None:
    """Refuse a database that is ahead of the code: it was migrated by a newer release."""
    code = latest(backend)
    if current > code:
        raise SchemaMismatch(
            f"the database is at schema version {current}, but this code knows only up to "
            f"{code}: run the newer release, or restore a backup made for this one"
        )
