"""A LINE user's language, read from their profile (`GET /v2/bot/profile/{userId}`) and cached.

Only the `language` field is read: the display name and picture are never kept or logged.
The language is a hint for a new conversation (the engine ignores it afterwards, and the
language command always wins), so a profile that cannot be read must never hold a report up:
the call has a short timeout, any failure is a `None`, and failures are cached briefly so a
LINE outage costs one slow call per user, not one per message.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import replace

import structlog

from bot.i18n import Catalogs
from bot.lang_pick import best_language
from bot.types import Inbound
from channels.line.api import LineApi

log = structlog.get_logger(__name__)

PROFILE_TIMEOUT = 2.0
KNOWN_SECONDS = 24 * 3600.0  # a person rarely changes their phone's language
FAILED_SECONDS = 300.0
MAX_USERS = 10_000


class ProfileLanguages:
    """user id → the profile's language tag (or None), bounded and expiring."""

    def __init__(self, api: LineApi) -> None:
        self._api = api
        self._cache: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        self._now = time.monotonic

    async def language(self, user_id: str) -> str | None:
        cached = self._cache.get(user_id)
        now = self._now()
        if cached is not None and cached[1] > now:
            self._cache.move_to_end(user_id)
            return cached[0]
        tag, ok = await self._fetch(user_id)
        self._cache[user_id] = (tag, now + (KNOWN_SECONDS if ok else FAILED_SECONDS))
        self._cache.move_to_end(user_id)
        while len(self._cache) > MAX_USERS:
            self._cache.popitem(last=False)
        return tag

    async def _fetch(self, user_id: str) -> tuple[str | None, bool]:
        if self._api.api is None:
            return None, False
        try:
            async with asyncio.timeout(PROFILE_TIMEOUT):  # not wait_for: see bot/waits.py
                language = await self._api.profile_language(user_id, PROFILE_TIMEOUT)
        except Exception as exc:  # a hint only: never let it stop a report
            log.info("line.profile_unavailable", error=type(exc).__name__)
            return None, False
        return language, True

    async def hinted(self, inbound: Inbound, catalogs: Catalogs) -> Inbound:
        """`inbound` with the profile's language as its `lang` hint, when we have a catalog."""
        if "lang" in inbound.hints:
            return inbound
        lang = best_language([tag], catalogs) if (tag := await self.language(inbound.sender)) \
            else None
        return replace(inbound, hints={**inbound.hints, "lang": lang}) if lang else inbound
