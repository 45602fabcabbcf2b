"""Structured logs (structlog): JSON in production, and never personal data in clear.

`scrub_pii` is a pure processor (`event_dict -> event_dict`): fields that carry personal data
are dropped to a marker, identifiers are replaced by a short hash that still lets one follow a
conversation through the logs, and phone numbers or coordinates that slipped into any other
string are masked. It runs last before rendering, so nothing added earlier escapes it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from config.settings import mask_url

# Fields whose value is personal data: never logged, not even hashed.
REDACT = frozenset({
    "phone", "location", "lat", "lon", "latitude", "longitude", "text", "payload", "message_text",
    "body", "address", "slots", "details", "reply_text",
})
# Fields that identify a person or a conversation: logged as a short hash.
PSEUDONYMISE = frozenset({"sender", "conversation", "reporter", "user_id", "recipient"})

_PHONE = re.compile(r"(?<!\w)(?:\+?66|0)[\s\-.]?\d(?:[\s\-.]?\d){7,9}(?!\w)")
_THAI_DIGIT_RUN = re.compile(r"[๐-๙][๐-๙\s\-]{7,}[๐-๙]")
_COORDS = re.compile(r"-?\d{1,3}\.\d{3,}\s*,\s*-?\d{1,3}\.\d{3,}")


# Loggers resolve their configuration once (a dict lookup less per line). The test suite
# turns this off: structlog's `capture_logs` must reach loggers already used.
CACHE_LOGGERS = True

# Keyed, so that nobody can enumerate Thai mobile numbers to reverse a pseudonym. Until
# `configure_logging` is given the service's log key, a key of this process alone.
_pseudonym_key = secrets.token_bytes(32)


def pseudonym(value: object) -> str:
    """A short keyed hash of `value` (HMAC-SHA256 with the log key, 64 bits shown)."""
    digest = hmac.new(_pseudonym_key, str(value).encode("utf-8", "replace"), hashlib.sha256)
    return "h:" + digest.hexdigest()[:16]


def _mask(text: str) -> str:
    text = mask_url(_COORDS.sub("<coords>", text))
    text = _PHONE.sub("<phone>", text)
    return _THAI_DIGIT_RUN.sub("<phone>", text)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _mask(value)
    if isinstance(value, dict):
        return {k: "<redacted>" if k in REDACT else _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def scrub_pii(logger: Any, method: str, event_dict: MutableMapping[str, Any]
              ) -> MutableMapping[str, Any]:
    """Remove or mask personal data in every field of a log event."""
    for key in list(event_dict):
        value = event_dict[key]
        if key in REDACT:
            event_dict[key] = "<redacted>"
        elif key in PSEUDONYMISE and value is not None:
            event_dict[key] = pseudonym(value)
        elif key == "exc_info":
            continue
        else:
            event_dict[key] = _clean(value)
    return event_dict


def mask_exception(logger: Any, method: str, event_dict: MutableMapping[str, Any]
                   ) -> MutableMapping[str, Any]:
    """Rendered tracebacks can quote values; mask them like any other text."""
    if isinstance(event_dict.get("exception"), str):
        event_dict["exception"] = _mask(event_dict["exception"])
    return event_dict


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is at the time of writing, not at configuration
    (test runners and daemons replace it; a closed old stream must not break logging)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(fmt: str = "", level: str = "info",
                      pseudonym_key: bytes | None = None) -> None:
    """Set up structlog for the process; `fmt` empty means console on a terminal, else JSON.

    `pseudonym_key` keys the pseudonyms (its own key, never a sealing or look-up key).
    """
    global _pseudonym_key
    if pseudonym_key is not None:
        _pseudonym_key = pseudonym_key
    use_json = fmt == "json" or (fmt == "" and not sys.stderr.isatty())
    renderer: Any = structlog.processors.JSONRenderer(ensure_ascii=False) if use_json else \
        structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            scrub_pii,
            structlog.processors.format_exc_info,
            mask_exception,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=CACHE_LOGGERS,
    )
