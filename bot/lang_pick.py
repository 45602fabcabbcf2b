"""Choosing a reporter's language from what a channel knows, so it need not be asked.

Channels pass what they have (a LINE profile's language, a browser's `Accept-Language`, an SMS
sender's number) and put the result in the `lang` hint of their `Inbound`; the engine uses it
for a new conversation only, and the language command changes it at any time. Which languages
exist, and which country calling codes speak them, is catalog data (`_meta.phone_prefixes`):
nothing here names a language.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.i18n import Catalogs

MAX_HEADER = 512  # an Accept-Language longer than this is cut, never parsed whole
MAX_TAGS = 20
_TAG = re.compile(r"^(?:[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)$")
_Q = re.compile(r"^q=(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$", re.I)


def accept_language(header: str) -> list[str]:
    """The language tags of an `Accept-Language` header, most wanted first (RFC 9110 §12.5.4).

    Ties keep the order they were sent in; `q=0` means "not this one"; a malformed entry is
    skipped, never an error.
    """
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header[:MAX_HEADER].split(",")[:MAX_TAGS]):
        tag, *params = (p.strip() for p in part.split(";"))
        if not _TAG.match(tag):
            continue
        q = 1.0
        for param in params:
            match = _Q.match(param.replace(" ", ""))
            if match:
                q = float(match.group(1))
            elif param.lower().startswith("q="):
                q = -1.0  # a q we cannot read: skip the entry rather than guess
        if q > 0:
            weighted.append((-q, index, tag.lower()))
    return [tag for _, _, tag in sorted(weighted)]


def best_language(tags: Iterable[str], catalogs: Catalogs) -> str | None:
    """The first tag we have a catalog for: the whole tag, else its primary subtag."""
    for tag in tags:
        tag = tag.strip().lower().replace("_", "-")
        for code in (tag, tag.split("-")[0]):
            if code and code != "*" and catalogs.has(code):
                return code
    return None


def language_for_phone(number: str, catalogs: Catalogs) -> str | None:
    """The language whose catalog claims the number's country calling code (longest wins)."""
    digits = number.strip().replace(" ", "").replace("-", "")
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if not digits.startswith("+"):
        return None  # a national number says nothing about a foreign country
    found: tuple[int, str] | None = None
    for lang in catalogs.languages:
        for prefix in lang.phone_prefixes:
            if digits.startswith(prefix) and (found is None or len(prefix) > found[0]):
                found = (len(prefix), lang.code)
    return found[1] if found else None
