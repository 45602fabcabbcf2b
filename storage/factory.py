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


async def open_storage(settings: Settings, sealer: Sealer) -> Storage:
    """The configured backend, migrated and ready, or a StorageError that says why not."""
    if settings.database_url.startswith(("postgresql://", "postgres://")):
        raise StorageError("PostgreSQL support is not installed in this build "
                           "(ESS_DATABASE_URL); use the SQLite default")
    return await SQLiteStorage.open(settings.sqlite_path, sealer)
