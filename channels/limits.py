"""Rate limits at the channels' edge, per client and overall, shared by every process.

Token buckets in the store (storage/ports.py `RateLimits`): a flood of sockets or frames from
one address, or from everywhere at once, is refused before it reaches the engine, on every
process alike. A refusal is always visible to the sender (a web frame not acknowledged, an
HTTP 429), so nothing already accepted is ever dropped. When the store cannot answer, the
message is let through: refusing a reporter because a counter is unreachable is worse than
a burst the engine then meets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime

import structlog
from aiohttp import web

from bot.types import utcnow
from config.settings import Settings
from storage.ports import Limit, RateLimits

log = structlog.get_logger(__name__)

MINUTE = 60.0


def retry_after(limit: Limit) -> int:
    """Whole seconds until the refused bucket has a token again (at most one period)."""
    return max(1, math.ceil(limit.period / limit.capacity))


def client_address(request: web.Request, trust_forwarded: bool) -> str:
    """Who is asking: the peer, or behind a trusted proxy the address it appended last."""
    if trust_forwarded:
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
        if forwarded:
            return forwarded[:64]
    return request.remote or "unknown"


class Gate:
    """The limits of the web chat and SMS, from the settings (`ESS_LIMIT_*`, per minute)."""

    def __init__(self, limits: RateLimits, settings: Settings,
                 clock: Callable[[], datetime] = utcnow):
        self._limits = limits
        self._settings = settings
        self._clock = clock
        self.trust_forwarded = settings.trust_forwarded

    async def web_socket(self, address: str) -> Limit | None:
        s = self._settings
        return await self._take("web.socket",
                                Limit(f"web:socket:addr:{address}", s.limit_web_sockets, MINUTE),
                                Limit("web:socket:all", s.limit_web_sockets_total, MINUTE))

    async def web_frame(self, address: str) -> Limit | None:
        s = self._settings
        return await self._take("web.frame",
                                Limit(f"web:frame:addr:{address}", s.limit_web_frames, MINUTE),
                                Limit("web:frame:all", s.limit_web_frames_total, MINUTE))

    async def sms(self, sender: str) -> Limit | None:
        s = self._settings
        return await self._take("sms", Limit(f"sms:sender:{sender}", s.limit_sms, MINUTE),
                                Limit("sms:all", s.limit_sms_total, MINUTE))

    async def _take(self, name: str, mine: Limit, overall: Limit) -> Limit | None:
        try:
            refused = await self._limits.take([mine, overall], self._clock())
        except Exception as exc:
            log.warning("limit.unchecked", error=type(exc).__name__)
            return None
        if refused is not None:
            # Never the key: it names an address or a phone number.
            log.info("limit.refused", limit=name,
                     scope="client" if refused is mine else "overall")
        return refused
