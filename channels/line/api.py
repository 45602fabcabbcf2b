"""Calls to the LINE Messaging API, with LINE's error rules.

Replies and pushes (every message a reporter gets) go through one aiohttp session of our
own, opened with `trust_env=False` (the SDK's client looks up proxy settings and `~/.netrc`
in the thread pool for every call) and with a body serialised once from the SDK's message
models, which `channels.line.render` builds and validates. The SDK's client stays for the
rest (profiles, rich menus): rare calls.

- 429: wait for `Retry-After` (the dispatcher does, or a bounded in-process retry does);
- 5xx and network errors: retry with the same `X-Line-Retry-Key`, so a push the server did
  accept is not delivered twice (LINE answers 409 to a key it already accepted: that is
  success for us);
- any other 4xx: logged with LINE's request id, never retried.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog
from linebot.v3.messaging import (
    ApiException,
    AsyncApiClient,
    AsyncMessagingApi,
    Configuration,
)

from bot.outbound import SendResult

log = structlog.get_logger(__name__)

DEFAULT_API_URL = "https://api.line.me"
REQUEST_TIMEOUT = 10.0
DEFAULT_RETRY_AFTER = 30.0
MAX_INLINE_WAIT = 5.0  # longest back-off spent inside one background task
INLINE_ATTEMPTS = 3


def _header(exc: ApiException, name: str) -> str | None:
    headers: Any = exc.headers or {}
    try:
        value = headers.get(name)
    except AttributeError:
        return None
    return str(value) if value is not None else None


def _retry_after(exc: ApiException) -> float:
    raw = _header(exc, "Retry-After")
    try:
        return max(0.0, float(raw)) if raw is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER


def _dict(message: Any) -> Any:
    """An SDK message model as LINE's JSON (camelCase, no nulls); a dict stays a dict."""
    return message if isinstance(message, dict) else message.to_dict()


_KEY_NAMESPACE = uuid.UUID("0f8f3a4e-5a57-4e55-9d5e-4c5f0c1e8b27")


def retry_key(key: str) -> str:
    """LINE takes only a UUID as retry key: any other key maps to one, always the same."""
    try:
        return str(uuid.UUID(key))
    except ValueError:
        return str(uuid.uuid5(_KEY_NAMESPACE, key))


def classify(exc: BaseException, call: str) -> SendResult:
    """An exception from an API call as the dispatcher's result, logged without content."""
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        request_id = _header(exc, "x-line-request-id")
        if status == 409 and _header(exc, "x-line-accepted-request-id"):
            log.info("line.api.already_accepted", call=call, request_id=request_id)
            return SendResult.sent()
        if status == 429:
            after = _retry_after(exc)
            log.warning("line.api.rate_limited", call=call, retry_after=after,
                        request_id=request_id)
            return SendResult.retry(after, "line 429")
        if status >= 500:
            log.warning("line.api.server_error", call=call, status=status,
                        request_id=request_id)
            return SendResult.retry(_retry_after(exc) if _header(exc, "Retry-After") else 5.0,
                                    f"line {status}")
        log.error("line.api.rejected", call=call, status=status, request_id=request_id)
        return SendResult.failed(f"line {status} request {request_id}")
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | OSError):
        log.warning("line.api.unreachable", call=call, error=type(exc).__name__)
        return SendResult.retry(5.0, f"line unreachable: {type(exc).__name__}")
    # Anything else (an answer the SDK cannot read, say): retrying with the same key is safe,
    # LINE refuses a second delivery of an accepted key.
    log.error("line.api.unexpected", call=call, error=type(exc).__name__)
    return SendResult.retry(5.0, f"line unexpected: {type(exc).__name__}")


class LineApi:
    """The messaging API client, opened and closed with the application."""

    def __init__(self, access_token: str, api_url: str = DEFAULT_API_URL) -> None:
        self._config = Configuration(host=api_url.rstrip("/"), access_token=access_token)
        self._base = api_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {access_token}",
                         "Content-Type": "application/json",
                         "User-Agent": "ess-line/1 (aiohttp)"}
        self._client: AsyncApiClient | None = None
        self._session: aiohttp.ClientSession | None = None
        self.api: AsyncMessagingApi | None = None

    async def open(self) -> None:
        self._client = AsyncApiClient(self._config)
        self.api = AsyncMessagingApi(self._client)
        self._session = aiohttp.ClientSession(
            trust_env=False, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._client is not None:
            await self._client.close()
            self._client = None
            self.api = None

    async def _post(self, path: str, body: dict[str, Any],
                    headers: dict[str, str] | None = None) -> None:
        """One POST; a non-2xx answer raises the SDK's ApiException, as its client would."""
        if self._session is None:
            raise RuntimeError("the LINE client is not open")
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        async with self._session.post(self._base + path, data=data, headers=(
                {**self._headers, **headers} if headers else self._headers)) as response:
            answer = await response.read()
            if response.status < 300:
                return
            exc = ApiException(status=response.status, reason=response.reason)
            exc.headers = response.headers
            exc.body = answer
            raise exc

    async def profile_language(self, user_id: str, seconds: float) -> str | None:
        """The `language` of a user's profile (nothing else of it is read); raises on any
        failure, as the SDK's `get_profile` would."""
        if self._session is None:
            raise RuntimeError("the LINE client is not open")
        url = f"{self._base}/v2/bot/profile/{quote(user_id, safe='')}"
        async with self._session.get(url, headers=self._headers,
                                     timeout=aiohttp.ClientTimeout(total=seconds)) as response:
            answer = await response.read()
            if response.status >= 300:
                exc = ApiException(status=response.status, reason=response.reason)
                exc.headers = response.headers
                raise exc
        data = json.loads(answer)
        language = data.get("language") if isinstance(data, dict) else None
        return language if isinstance(language, str) and language else None

    async def reply(self, token: str, messages: Sequence[Any], silent: bool) -> SendResult:
        """Use a reply token (once). Any failure is FAILED: the caller pushes instead."""
        try:
            await self._post("/v2/bot/message/reply", {
                "replyToken": token, "messages": [_dict(m) for m in messages],
                "notificationDisabled": silent})
        except Exception as exc:
            result = classify(exc, "reply")
            return result if result.ok else SendResult.failed(result.error or "reply failed")
        return SendResult.sent()

    async def push(self, to: str, messages: Sequence[Any], *, key: str,
                   silent: bool) -> SendResult:
        """One push attempt with the idempotency key."""
        try:
            await self._post("/v2/bot/message/push", {
                "to": to, "messages": [_dict(m) for m in messages],
                "notificationDisabled": silent}, {"X-Line-Retry-Key": retry_key(key)})
        except Exception as exc:
            return classify(exc, "push")
        return SendResult.sent()

    async def push_with_retries(self, to: str, messages: Sequence[Any], *, key: str,
                                silent: bool) -> SendResult:
        """A push from a conversation (no outbox row behind it): a few quick attempts."""
        result = SendResult.failed("not attempted")
        for attempt in range(INLINE_ATTEMPTS):
            result = await self.push(to, messages, key=key, silent=silent)
            if result.outcome != "retry" or attempt == INLINE_ATTEMPTS - 1:
                break
            await asyncio.sleep(min(result.retry_after or 1.0, MAX_INLINE_WAIT))
        return result
