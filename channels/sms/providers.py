"""Outbound SMS: a small provider contract, a Twilio-compatible REST client, a log-only one.

A provider sends one text to one number and says what happened as a `SendResult`: 429 and
5xx are RETRY (with `Retry-After` when given), other 4xx are FAILED (a bad number will not
get better), network errors are RETRY.
"""

from __future__ import annotations

import base64
from typing import Protocol

import aiohttp
import structlog

from bot.outbound import SendResult
from channels.sms.segments import count_segments

log = structlog.get_logger(__name__)

DEFAULT_TWILIO_API_URL = "https://api.twilio.com"
TIMEOUT = aiohttp.ClientTimeout(total=15)


class SmsProvider(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, to: str, text: str, *, key: str) -> SendResult:
        """Send `text` to the E.164 number `to`; `key` identifies the attempt for logs."""


class LogProvider:
    """Development: logs that a message would go out (its size, never its text or number)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []  # kept in memory for `ess serve` demos and tests

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, to: str, text: str, *, key: str) -> SendResult:
        segments = count_segments(text)
        self.sent.append((to, text))
        log.info("sms.dev_send", recipient=to, encoding=segments.encoding,
                 segments=segments.count, key=key)
        return SendResult.sent()


class TwilioProvider:
    """Twilio's Messages API (or anything that speaks it, at `api_url`)."""

    def __init__(self, account_sid: str, auth_token: str, sender: str,
                 api_url: str = DEFAULT_TWILIO_API_URL) -> None:
        self._sid = account_sid
        basic = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self._headers = {"Authorization": f"Basic {basic}"}
        self._from = sender
        self._url = f"{api_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(timeout=TIMEOUT)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, to: str, text: str, *, key: str) -> SendResult:
        if self._session is None:
            raise RuntimeError("the SMS provider is not open")
        segments = count_segments(text)
        try:
            # The outbox row's key, the same on every retry: a gateway that honours
            # Idempotency-Key sends a retried message once (Twilio itself ignores it).
            async with self._session.post(self._url, headers={
                    **self._headers, "Idempotency-Key": key}, data={
                    "To": to, "From": self._from, "Body": text}) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                try:
                    answer = await response.json(content_type=None)
                except ValueError:
                    answer = {}
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("sms.twilio.unreachable", error=type(exc).__name__, key=key)
            return SendResult.retry(10.0, f"twilio unreachable: {type(exc).__name__}")
        code = answer.get("code") if isinstance(answer, dict) else None
        if status in (200, 201):
            log.info("sms.twilio.sent", recipient=to, segments=segments.count,
                     encoding=segments.encoding, key=key)
            return SendResult.sent()
        if status == 429 or status >= 500:
            after = float(retry_after) if retry_after and retry_after.isdecimal() else 30.0
            log.warning("sms.twilio.retry", status=status, code=code, key=key)
            return SendResult.retry(after, f"twilio {status}")
        log.error("sms.twilio.rejected", status=status, code=code, key=key)
        return SendResult.failed(f"twilio {status} code {code}")
