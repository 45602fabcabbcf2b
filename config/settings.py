"""Typed settings from an optional TOML file and `ESS_*` environment variables.

Precedence: environment over file over default. The file is `$ESS_CONFIG`, else `./ess.toml`
when it exists; its keys are the setting names in lower case without the prefix
(`port = 8080`). Channels read their own `ESS_<CHANNEL>_*` settings through `Settings.extra`.
A bad value raises SettingsError naming the setting and what it accepts.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bot.durations import parse_duration

PREFIX = "ESS_"


class SettingsError(ValueError):
    """A setting with a value it cannot take."""


def _text(value: Any) -> str:
    return str(value)


def _port(value: Any) -> int:
    port = int(str(value))
    if not 1 <= port <= 65535:
        raise ValueError
    return port


def _positive_int(value: Any) -> int:
    number = int(str(value))
    if number < 1:
        raise ValueError
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError


def _duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds is None:
        raise ValueError
    return seconds


_ZERO = re.compile(r"0+(\.0*)?\s*[smhd]?")


def _duration_or_off(most: float) -> Callable[[Any], float]:
    # 0 turns the guard off; anything else is a duration like every other, up to `most`.
    def parse(value: Any) -> float:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if (number and value == 0) or _ZERO.fullmatch(str(value).strip()):
            return 0.0
        seconds = _duration(value)
        if seconds > most:
            raise ValueError
        return seconds
    return parse


def _words(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(w.strip() for w in items if str(w).strip())


def _choice(*options: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if str(value) not in options:
            raise ValueError
        return str(value)
    return parse


def _positive_float(value: Any) -> float:
    number = float(str(value))
    if not number > 0:
        raise ValueError
    return number


def _redis_url(value: Any) -> str:
    text = str(value)
    if text and not text.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError
    return text


def _database_url(value: Any) -> str:
    text = str(value)
    if not text.startswith(("sqlite:", "postgresql://", "postgres://")):
        raise ValueError
    return text


_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")
_SECRET_QUERY = re.compile(r"(?i)((?:password|passwd|pwd|secret|token|key)=)[^&\s]*")
SECRET_SETTINGS = frozenset({"secret_keys", "lookup_key", "log_key"})


def mask_url(text: str) -> str:
    """`text` with the credentials of every URL in it masked (`postgresql://***@host/db`).

    For anything shown: errors, logs, `ess` output. Works on malformed URLs too.
    """
    return _SECRET_QUERY.sub(r"\1***", _USERINFO.sub("***@", text))


def _shown(name: str, value: Any) -> str:
    """A setting's value as an error may show it: never a key, never a password."""
    if name in SECRET_SETTINGS:
        return "<hidden>"
    return mask_url(repr(value))


def _min_count(value: Any) -> int:
    # 1 would publish single incidents: a threshold below 2 is no suppression at all.
    number = _positive_int(value)
    if number < 2:
        raise ValueError(value)
    return number


@dataclass(frozen=True)
class _Spec:
    parse: Callable[[Any], Any]
    accepts: str


SPECS: dict[str, _Spec] = {
    "data_dir": _Spec(_text, "a folder path"),
    "database_url": _Spec(_database_url, "sqlite:///path/to/file.db or postgresql://…"),
    "redis_url": _Spec(_redis_url, "redis://host:port/db, rediss://… or unix://…"),
    "database_pool_min": _Spec(_positive_int, "a number of connections, at least 1"),
    "database_pool_max": _Spec(_positive_int, "a number of connections, at least 1"),
    "redis_pool_max": _Spec(_positive_int, "a number of connections, at least 1"),
    "store_timeout": _Spec(_positive_float, "seconds, e.g. 5 or 0.5"),
    "lock_ttl": _Spec(_positive_float, "seconds a crashed holder keeps a conversation lock"),
    "host": _Spec(_text, "an address to listen on, e.g. 127.0.0.1 or 0.0.0.0"),
    "port": _Spec(_port, "a port number from 1 to 65535"),
    "session_idle": _Spec(_duration, "a duration such as 30m, 900s or 2h"),
    "default_lang": _Spec(_text, "a language code with a catalog, e.g. th or en"),
    "silent_codewords": _Spec(_words, "comma-separated words that open a silent report"),
    "drill_words": _Spec(_words, "comma-separated words that start a drill"),
    "demo_mode": _Spec(_bool, "true or false"),
    "log_format": _Spec(_choice("json", "console"), "json or console"),
    "log_level": _Spec(_choice("debug", "info", "warning", "error"),
                       "debug, info, warning or error"),
    "secret_keys": _Spec(_text, "comma-separated base64 32-byte keys, newest first"),
    "lookup_key": _Spec(_text, "a base64 32-byte key for look-up digests"),
    "log_key": _Spec(_text, "a base64 32-byte key for log pseudonyms"),
    "flows_dir": _Spec(_text, "a folder of extra flow files"),
    "catalogs_dir": _Spec(_text, "a folder of extra catalog files"),
    "max_body_bytes": _Spec(_positive_int, "a number of bytes"),
    "case_photo_max_bytes": _Spec(_positive_int, "a number of bytes"),
    "directory_dir": _Spec(_text, "a folder with stations.csv and groups.csv"),
    "programmes_dir": _Spec(_text, "a folder of welfare programme rules (*.yaml)"),
    "escalate_after": _Spec(_duration, "a duration such as 5m or 300s"),
    "remind_after": _Spec(_duration, "a duration such as 10m"),
    "max_station_km": _Spec(_positive_int, "a whole number of kilometres"),
    "limit_web_sockets": _Spec(_positive_int, "new web-chat sockets per client address per "
                               "minute"),
    "limit_web_sockets_total": _Spec(_positive_int, "new web-chat sockets per minute, in all"),
    "limit_web_frames": _Spec(_positive_int, "web-chat messages per client address per minute"),
    "limit_web_frames_total": _Spec(_positive_int, "web-chat messages per minute, in all"),
    "limit_sms": _Spec(_positive_int, "SMS per sending number per minute"),
    "limit_sms_total": _Spec(_positive_int, "SMS per minute, in all"),
    "trust_forwarded": _Spec(_bool, "true or false"),
    "export_download_ttl": _Spec(_duration, "a duration such as 15m (how long a sealed "
                                 "export waits for its one download)"),
    "analytics_min_count": _Spec(_min_count, "a whole number of at least 2 (counts below it "
                                 "are shown as <N)"),
    "analytics_fresh": _Spec(_duration_or_off(600), "a duration up to 10m such as 30s, or 0 "
                             "(analytics figures are reused this long for the same question)"),
    "analytics_pace": _Spec(_duration_or_off(60), "a duration up to 60s such as 2s, or 0 "
                            "(one viewer's analytics loads start at least this far apart)"),
}


@dataclass(frozen=True)
class Settings:
    """Everything the service reads at start-up."""

    data_dir: str = "./var"
    database_url: str = ""  # empty: SQLite in the data folder
    redis_url: str = ""
    # PostgreSQL connections per process: several processes share max_connections (100).
    database_pool_min: int = 2
    database_pool_max: int = 10
    redis_pool_max: int = 50
    # Every store call gives up after this: a lost server fails the request, never hangs it.
    store_timeout: float = 5.0
    # A Redis conversation lock held by a crashed process frees itself after this long.
    lock_ttl: float = 30.0
    host: str = "127.0.0.1"
    port: int = 8080
    session_idle: float = 30 * 60
    default_lang: str = "th"
    silent_codewords: tuple[str, ...] = ("ขอดูเมนูหน่อย", "menu please")
    drill_words: tuple[str, ...] = ("ฝึกซ้อม", "drill")
    demo_mode: bool = False
    log_format: str = ""  # empty: console on a terminal, JSON otherwise
    log_level: str = "info"
    secret_keys: str = ""  # empty: a key file in the data folder
    # Each empty: its own key file in the data folder. Processes that share a database
    # must share the look-up key (and the log key, to follow a person across their logs).
    lookup_key: str = ""
    log_key: str = ""
    flows_dir: str = ""
    catalogs_dir: str = ""
    max_body_bytes: int = 256 * 1024
    case_photo_max_bytes: int = 5 * 1024 * 1024  # a photo of documents larger is refused
    directory_dir: str = ""  # empty: the sample directory shipped in config/directory
    programmes_dir: str = ""  # empty: the sample rules shipped in config/programmes
    escalate_after: float = 5 * 60  # no acknowledgement this long after delivery: escalate
    remind_after: float = 10 * 60  # acknowledged but not on the way: remind the holder
    max_station_km: int = 60  # farther from every station: the national fallback, flagged
    # Rate limits, per minute, shared by every process (channels/limits.py). Generous per
    # address: many phones share one carrier-grade NAT address.
    limit_web_sockets: int = 30
    limit_web_sockets_total: int = 3000
    limit_web_frames: int = 120
    limit_web_frames_total: int = 12000
    limit_sms: int = 20
    limit_sms_total: int = 1200
    trust_forwarded: bool = False  # take the client address from X-Forwarded-For (a proxy's)
    export_download_ttl: float = 15 * 60  # a sealed export's link works this long, once
    analytics_min_count: int = 5  # analytics show a count below this as "<5" (anonymity)
    # The page's figures are reused this long for the same scope and question, and one
    # viewer's loads start at least this far apart (channels/board/analytics_share.py).
    analytics_fresh: float = 30.0
    analytics_pace: float = 2.0
    extra: Mapping[str, str] = field(default_factory=dict)  # other ESS_* (channel settings)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def sqlite_path(self) -> Path:
        if self.database_url.startswith("sqlite:"):
            return Path(self.database_url.removeprefix("sqlite:").removeprefix("//"))
        return self.data_path / "ess.db"


def load_settings(env: Mapping[str, str] | None = None, file: Path | None = None) -> Settings:
    """Read the file (if any) and the environment; raise SettingsError on any bad value."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    path = file or (Path(env["ESS_CONFIG"]) if env.get("ESS_CONFIG") else Path("ess.toml"))
    if path.exists():
        try:
            raw.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    elif file is not None or env.get("ESS_CONFIG"):
        raise SettingsError(f"ESS_CONFIG: {path} does not exist")
    for name in list(raw):
        if name not in SPECS:
            raise SettingsError(f"{path}: unknown setting {name!r}; known: "
                                f"{', '.join(sorted(SPECS))}")
    extra: dict[str, str] = {}
    for key, value in env.items():
        if not key.startswith(PREFIX) or key == "ESS_CONFIG":
            continue
        name = key[len(PREFIX):].lower()
        if name in SPECS:
            raw[name] = value
        else:
            extra[key] = value
    values: dict[str, Any] = {}
    for name, value in raw.items():
        spec = SPECS[name]
        try:
            values[name] = spec.parse(value)
        except (ValueError, TypeError):
            raise SettingsError(
                f"{PREFIX}{name.upper()}={_shown(name, value)} is not valid: expected "
                f"{spec.accepts}"
            ) from None
    if values.get("database_pool_min", 2) > values.get("database_pool_max", 10):
        raise SettingsError("ESS_DATABASE_POOL_MIN is larger than ESS_DATABASE_POOL_MAX: "
                            "expected min <= max")
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in values.items() if k in known}, extra=extra)
