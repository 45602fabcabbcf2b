"""Regression tests for secrets and personal data (issue 9): each failed before the fix."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import bot.logs
from bot.cli import main
from bot.logs import configure_logging, pseudonym, scrub_pii
from bot.wiring import load_catalogs, open_services
from config.settings import Settings, SettingsError, load_settings, mask_url
from routing.sender import ConsoleSender, RoutingSender
from storage.crypto import Sealer, SealError, key_id
from storage.factory import log_key, make_sealer, open_storage
from storage.postgres import describe_dsn
from tests.helpers import choice, start, text

PASSWORD = "hunter2"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def logging_restored() -> Iterator[None]:
    yield
    configure_logging("console", "info", os.urandom(32))
    structlog.reset_defaults()


# -- 7. keyed log pseudonyms ---------------------------------------------------------------

def test_pseudonyms_are_keyed_with_their_own_key(settings: Settings,
                                                 logging_restored: None) -> None:
    value = "sms:+66812345678"
    configure_logging("json", "info", log_key(settings))
    first = pseudonym(value)
    # Not the unkeyed SHA-256 anyone could compute for every Thai mobile number.
    assert first.removeprefix("h:") not in hashlib.sha256(value.encode()).hexdigest()
    assert len(first) >= 2 + 16 and scrub_pii(None, "info", {"sender": value})["sender"] == first
    configure_logging("json", "info", log_key(settings))  # the same key file: stable
    assert pseudonym(value) == first
    configure_logging("json", "info", os.urandom(32))
    assert pseudonym(value) != first
    key_file = settings.data_path / "log.key"
    assert mode(key_file) == 0o600
    secret = (settings.data_path / "secret.key")
    assert not secret.exists() or secret.read_text() != key_file.read_text()


def test_loggers_are_cached_in_production(logging_restored: None) -> None:
    saved = bot.logs.CACHE_LOGGERS
    bot.logs.CACHE_LOGGERS = True
    try:
        configure_logging("json", "info")
        assert structlog.get_config()["cache_logger_on_first_use"] is True
    finally:
        bot.logs.CACHE_LOGGERS = saved


# -- 8. a stable look-up key and real key ids ----------------------------------------------

def _colliding_keys() -> tuple[bytes, bytes]:
    """Two keys whose one-byte ids of the first format are the same (1 pair in 256)."""
    seen: dict[int, bytes] = {}
    for i in range(10_000):
        key = hashlib.sha256(b"k%d" % i).digest()
        legacy = hashlib.sha256(key).digest()[0]
        if legacy in seen:
            return seen[legacy], key
        seen[legacy] = key
    raise AssertionError("no collision found")


def _sealed_the_old_way(key: bytes, data: bytes) -> bytes:
    # Exactly what the first Sealer wrote: id byte = sha256(key)[0], nonce, AES-GCM.
    nonce = os.urandom(12)
    return bytes([hashlib.sha256(key).digest()[0]]) + nonce + AESGCM(key).encrypt(
        nonce, data, None)


def test_new_data_is_sealed_with_the_new_key_even_when_old_ids_collide() -> None:
    old, new = _colliding_keys()
    rotated = Sealer([new, old])
    blob = rotated.seal(b"+66812345678")
    assert Sealer([new]).open(blob) == b"+66812345678"
    with pytest.raises(SealError):
        Sealer([old]).open(blob)
    assert len(key_id(new)) >= 8 and key_id(new) != key_id(old)
    assert key_id(new) in blob[:16]


def test_data_sealed_in_the_old_format_stays_readable() -> None:
    old, new = _colliding_keys()
    for key in (old, new):
        blob = _sealed_the_old_way(key, b"slot answers")
        assert Sealer([new, old]).open(blob) == b"slot answers"
        assert Sealer([old, new]).open(blob) == b"slot answers"
    with pytest.raises(SealError):
        Sealer([b"z" * 32]).open(_sealed_the_old_way(old, b"x"))


def test_rotating_the_sealing_key_changes_no_digest(tmp_path: Path) -> None:
    folder = tmp_path / "var"
    first = make_sealer(Settings(data_dir=str(folder)))
    before = first.digest("sms:+66812345678")
    # An upgrade keeps the digests the data folder had (derived from its only key).
    old_key = base64.urlsafe_b64decode((folder / "secret.key").read_text().strip())
    assert Sealer([old_key]).digest("sms:+66812345678") == before
    newest = base64.urlsafe_b64encode(os.urandom(32)).decode()
    rotated = make_sealer(Settings(data_dir=str(folder), secret_keys=f"{newest},"
                                   + (folder / "secret.key").read_text().strip()))
    assert rotated.digest("sms:+66812345678") == before
    assert mode(folder / "lookup.key") == 0o600
    own = base64.urlsafe_b64encode(b"L" * 32).decode()
    assert make_sealer(Settings(data_dir=str(folder), lookup_key=own)).digest("x") == \
        Sealer([old_key], b"L" * 32).digest("x")


# -- 9. settings errors never print a secret -----------------------------------------------

def test_a_settings_error_masks_credentials() -> None:
    url = f"mysql://ess:{PASSWORD}@db.example:5432/ess"
    with pytest.raises(SettingsError) as caught:
        load_settings({"ESS_DATABASE_URL": url}, file=None)
    assert PASSWORD not in str(caught.value) and "db.example" in str(caught.value)
    with pytest.raises(SettingsError) as caught:
        load_settings({"ESS_REDIS_URL": f"http://:{PASSWORD}@r:6379/0"})
    assert PASSWORD not in str(caught.value)
    assert mask_url(f"see postgresql://ess:{PASSWORD}@h/db?password={PASSWORD}") == \
        "see postgresql://***@h/db?password=***"
    assert describe_dsn(f"postgresql://ess:{PASSWORD}@h:port/db") == "h:?/db"
    event = scrub_pii(None, "error", {"event": "x", "error": f"redis://:{PASSWORD}@h/0"})
    assert PASSWORD not in str(event)


@pytest.mark.parametrize("env", [
    {"ESS_DATABASE_URL": f"postgresql://ess:{PASSWORD}@db:notaport/ess"},
    {"ESS_DATABASE_URL": f"postgresql://ess:{PASSWORD}@127.0.0.1:1/ess",
     "ESS_REDIS_URL": f"redis://:{PASSWORD}@h:notaport/0"},
])
def test_ess_output_never_shows_a_password(env: dict[str, str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["db", "migrate"]) != 0
    out = capsys.readouterr()
    assert PASSWORD not in out.out + out.err and "Traceback" not in out.err
    assert "ess:" in out.err


# -- 10. console masking -------------------------------------------------------------------

async def test_the_console_shows_no_typed_address_and_no_relayed_words(
        settings: Settings) -> None:
    stream = io.StringIO()
    sender = RoutingSender({"console": ConsoleSender(load_catalogs(settings), stream)})
    services = await open_services(settings, sender=sender)
    try:
        e = services.engine
        await e.handle(start("u"))
        await e.handle(choice("u", "threat"))
        await e.handle(text("u", "บ้านสีฟ้าท้ายซอยลับ"))
        await e.handle(text("u", "081-234-5678"))
        await e.handle(choice("u", "send"))
        await e.handle(text("u", "เขากำลังมาที่ประตูหลัง"))
        while await services.dispatcher.run_once():
            pass
    finally:
        await services.close()
    printed = stream.getvalue()
    assert "── to console:" in printed  # the responders were told, on the console
    for secret in ("บ้านสีฟ้าท้ายซอยลับ", "ประตูหลัง", "812345678", "234-5678"):
        assert secret not in printed, secret


# -- 11. files with data are the owner's only ----------------------------------------------

async def test_the_data_folder_and_database_are_private(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        settings = Settings(data_dir=str(tmp_path / "var" / "ess"))
        storage = await open_storage(settings, make_sealer(settings))
        await storage.bindings.create_code("TH-10", "police", 60, __import__(
            "bot.types", fromlist=["utcnow"]).utcnow())
        try:
            folder = settings.data_path
            assert mode(folder) == 0o700
            files = {p.name: mode(p) for p in folder.iterdir()}
            assert files["ess.db"] == 0o600 and files.get("ess.db-wal", 0o600) == 0o600
            assert "ess.db-wal" in files
            assert all(m == 0o600 for m in files.values()), files
        finally:
            await storage.close()
        # A database left 0644 by an older release is tightened at the next start.
        os.chmod(settings.sqlite_path, 0o644)
        storage = await open_storage(settings, make_sealer(settings))
        await storage.close()
        assert mode(settings.sqlite_path) == 0o600
    finally:
        os.umask(old_umask)


def test_a_shared_database_without_a_shared_lookup_key_is_warned_about(tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    shared = Settings(data_dir=str(tmp_path / "var"), database_url="postgresql://h/db")
    with capture_logs() as logs:
        make_sealer(shared)
        make_sealer(Settings(data_dir=str(tmp_path / "v2"), database_url="postgresql://h/db",
                             lookup_key=base64.urlsafe_b64encode(b"L" * 32).decode()))
    assert [e["event"] for e in logs] == ["storage.lookup_key_local"]
