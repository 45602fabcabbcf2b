"""Text that arrives from outside, made safe to store, log and render.

JSON allows `\\ud800` (a lone UTF-16 surrogate), and a Python str may then hold a code point
that no encoder accepts: one such character would fail every store (UTF-8 encoding) and lose
a report. `clean_text` is the one place that replaces them (and NUL, which PostgreSQL text
refuses) with U+FFFD; every `Inbound` is cleaned when it is built, and the stores clean what
they encode again, so no channel and no code path can forget it.
"""

from __future__ import annotations

import json
import re
from typing import Any

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")


def clean_text(text: str) -> str:
    """`text` with lone surrogates and NUL replaced by U+FFFD (a no-op for ordinary text)."""
    if _UNSTORABLE.search(text) is None:
        return text
    return _UNSTORABLE.sub(REPLACEMENT, text)


def clean_value(value: Any) -> Any:
    """`clean_text` applied to every string inside JSON-like data (keys too)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_value(k): clean_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_value(v) for v in value]
    return value


def dump_json(value: Any) -> str:
    """JSON text that every store can encode, whatever strings `value` holds."""
    # Dumped first, cleaned only when the text shows a need: walking every value of every
    # session and event was a measurable share of a report's CPU, and nearly all of them
    # are clean. A lone surrogate is written as it is (ensure_ascii=False) and NUL as
    # \\u0000 (which jsonb refuses too); a literal backslash-u0000 typed by someone only
    # takes the cleaning path, whose result is then the same text.
    text = json.dumps(value, ensure_ascii=False)
    if _UNSTORABLE.search(text) is None and "\\u0000" not in text:
        return text
    return json.dumps(clean_value(value), ensure_ascii=False)
