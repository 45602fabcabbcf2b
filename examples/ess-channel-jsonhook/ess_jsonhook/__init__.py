"""An example ESS channel: signed JSON in, the bot's replies as JSON out.

It shows every part of the contract in `channels.base`: settings (`from_settings`, staying
off with `ChannelOff`), routes, verify → parse into `Inbound` → hand over with one call
(`services.inbound.handle`: the core decides reporter, responder or admin command) → render,
and `send` (a `Reply` or a typed `ResponderCard`) with a `SendResult` for the dispatcher.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, ClassVar

import aiohttp
from aiohttp import web

from bot.outbound import Outbound, ResponderCard, SendResult
from bot.render import Abilities, card_lines
from bot.types import Inbound, Kind, Location, LocationSource
from channels.base import Channel, ChannelContext, optional_setting, setting, split_address
from channels.bodies import load_json, secret_equal
from config.settings import Settings

NAME = "jsonhook"
MAX_ID = 64


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class JsonHookChannel(Channel):
    """Anything that speaks signed JSON; addresses are `jsonhook:<sender>`."""

    name: ClassVar[str] = NAME
    abilities = Abilities(buttons=True, location=True)

    def __init__(self, secret: str, outbound_url: str = "") -> None:
        self._secret = secret.encode()
        self.outbound_url = outbound_url
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> JsonHookChannel:
        return cls(setting(settings, "ESS_JSONHOOK_SECRET", channel=NAME),
                   optional_setting(settings, "ESS_JSONHOOK_OUTBOUND_URL"))

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/webhooks/jsonhook", self.webhook)

    async def start(self, ctx: ChannelContext) -> None:
        await super().start(ctx)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.read()
        signature = request.headers.get("X-Jsonhook-Signature", "")
        if not signature or not secret_equal(sign(self._secret, body), signature):
            return web.json_response({"error": "invalid signature"}, status=401)
        try:
            inbound = self.parse(load_json(body))
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "expected {id, from, type, ...}"}, status=400)
        replies = await self.ctx.services.inbound.handle(inbound)
        return web.json_response({"messages": [self.render(r) for r in replies]})

    def parse(self, data: Any) -> Inbound:
        """One JSON event as an `Inbound`; ValueError/KeyError/TypeError when malformed."""
        event_id, sender, kind = str(data["id"]), str(data["from"]), data["type"]
        if not 0 < len(event_id) <= MAX_ID or not 0 < len(sender) <= MAX_ID:
            raise ValueError("id and from are 1 to 64 characters")
        if kind == "text":
            return Inbound(NAME, sender, Kind.TEXT, event_id, str(data["text"]))
        if kind == "choice":
            return Inbound(NAME, sender, Kind.CHOICE, event_id, str(data["value"]))
        if kind == "location":
            return Inbound(NAME, sender, Kind.LOCATION, event_id, Location(
                float(data["lat"]), float(data["lon"]), LocationSource.REPORTER_PIN))
        if kind == "start":
            return Inbound(NAME, sender, Kind.START, event_id, data.get("flow"))
        raise ValueError("unknown type")

    def render(self, message: Outbound) -> dict[str, Any]:
        catalogs, ask = self.ctx.services.catalogs, None
        if isinstance(message, ResponderCard):
            text, choices = "\n".join(card_lines(message, catalogs)), [
                (a.token, a.label) for a in message.actions]
        else:
            text, choices = catalogs.render(message.lang, message.text), [
                (c.value, c.label) for c in message.choices]
            ask = message.ask.value if message.ask else None
        return {"text": text, "ask": ask,
                "choices": [{"value": v, "label": catalogs.render(message.lang, label)}
                            for v, label in choices]}

    async def send(self, address: str, message: Outbound, *, key: str,
                   silent: bool = False) -> SendResult:
        try:
            _, to = split_address(address)
        except ValueError:
            return SendResult.failed("bad address")
        if not self.outbound_url or self._session is None:
            return SendResult.failed("ESS_JSONHOOK_OUTBOUND_URL is not set")
        body = json.dumps({"to": to, "key": key, "silent": silent,
                           "message": self.render(message)}).encode()
        try:
            async with self._session.post(self.outbound_url, data=body, headers={
                    "Content-Type": "application/json",
                    "X-Jsonhook-Signature": sign(self._secret, body)}) as response:
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return SendResult.retry(10.0, f"unreachable: {type(exc).__name__}")
        if status < 300:
            return SendResult.sent()
        if status == 429 or status >= 500:
            return SendResult.retry(30.0, f"status {status}")
        return SendResult.failed(f"status {status}")
