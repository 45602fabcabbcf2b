"""Open the store the settings name: SQLite by default; PostgreSQL/Redis when configured."""

from __future__ import annotations

from config.settings import Settings
from storage.crypto import Sealer, load_or_create_key_file, parse_keys
from storage.ports import Storage, StorageError
from storage.sqlite import SQLiteStorage


def make_sealer(settings: Settings) -> Sealer:
    try:
        keys = parse_keys(settings.secret_keys) if settings.secret_keys else \
            load_or_create_key_file(settings.data_path / "secret.key")
    except (ValueError, OSError) as exc:
        raise StorageError(f"ESS_SECRET_KEYS: {exc}") from None
    return Sealer(keys)


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
