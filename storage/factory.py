"""Open the store the settings name: SQLite by default; PostgreSQL/Redis when configured."""

from __future__ import annotations

import secrets

import structlog

from config.settings import Settings
from storage.crypto import (
    Sealer,
    encode_key,
    legacy_lookup_key,
    load_or_create_key_file,
    parse_keys,
    secret_file,
)
from storage.ports import Storage, StorageError
from storage.sqlite import SQLiteStorage

log = structlog.get_logger(__name__)

LOOKUP_KEY_FILE = "lookup.key"
LOG_KEY_FILE = "log.key"


def make_sealer(settings: Settings) -> Sealer:
    try:
        keys = parse_keys(settings.secret_keys) if settings.secret_keys else \
            load_or_create_key_file(settings.data_path / "secret.key")
    except (ValueError, OSError) as exc:
        raise StorageError(f"ESS_SECRET_KEYS: {exc}") from None
    try:
        return Sealer(keys, lookup_key(settings, keys))
    except (ValueError, OSError) as exc:
        raise StorageError(f"ESS_LOOKUP_KEY: {exc}") from None


def lookup_key(settings: Settings, keys: list[bytes]) -> bytes:
    """`ESS_LOOKUP_KEY`, else the data folder's `lookup.key`, created on first start with
    the key the digests had so far (derived from the newest sealing key), so an upgrade
    keeps every stored digest and later rotations of the sealing keys change none."""
    if settings.lookup_key:
        return parse_keys(settings.lookup_key)[0]
    if is_postgres(settings):
        # Each process's own file: processes started after a key rotation would disagree.
        log.warning("storage.lookup_key_local",
                    hint="set ESS_LOOKUP_KEY when several processes share the database")
    text = secret_file(settings.data_path / LOOKUP_KEY_FILE,
                       lambda: encode_key(legacy_lookup_key(keys[0])))
    return parse_keys(text)[0]


def log_key(settings: Settings) -> bytes:
    """`ESS_LOG_KEY`, else the data folder's own random `log.key` (never a sealing key)."""
    try:
        if settings.log_key:
            return parse_keys(settings.log_key)[0]
        return parse_keys(secret_file(settings.data_path / LOG_KEY_FILE,
                                      lambda: encode_key(secrets.token_bytes(32))))[0]
    except (ValueError, OSError) as exc:
        raise StorageError(f"ESS_LOG_KEY: {exc}") from None


def is_postgres(settings: Settings) -> bool:
    return settings.database_url.startswith(("postgresql://", "postgres://"))


async def open_storage(settings: Settings, sealer: Sealer) -> Storage:
    """The configured backend, checked and ready, or a StorageError that says why not."""
    if settings.redis_url and not is_postgres(settings):
        # Sessions in Redis but incidents in a per-process SQLite file would be half-shared.
        raise StorageError("ESS_REDIS_URL needs ESS_DATABASE_URL=postgresql://… as well")
    if not is_postgres(settings):
        return await SQLiteStorage.open(settings.sqlite_path, sealer)
    from storage.composite import CompositeStorage
    from storage.postgres import PostgresStorage
    from storage.redis import RedisState

    database = await PostgresStorage.open(settings, sealer)
    if not settings.redis_url:
        return database
    try:
        state = await RedisState.open(settings, sealer)
    except BaseException:
        await database.close()
        raise
    return CompositeStorage(database, state)
