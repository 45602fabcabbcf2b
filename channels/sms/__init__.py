"""The SMS channel: gateway webhooks in, numbered menus out through a provider.

Inbound: `POST /webhooks/sms/twilio` (form-encoded, `X-Twilio-Signature` = base64
HMAC-SHA1 over the URL as Twilio called it plus every parameter sorted by name) and
`POST /webhooks/sms/generic` (JSON `{"id", "from", "text"}`, header
`X-ESS-Signature: sha256=<hex HMAC-SHA256 of the body>`). Both keep the message in the
inbound journal (bot.inbox) and answer 200 at once (503 when it cannot be kept, so the
gateway retries); it is handled from there. The gateway's message id is the event id.

Output: every reply of one message joined into one text, choices as numbered lines (Arabic
or Thai digits both work back), the location step by text or, when `ESS_PUBLIC_URL` is set,
a one-time link to a page that captures the phone's position. `#` at the phone step uses the
sending number. STOP / START / HELP are answered here, before any flow.

Settings: `ESS_SMS_TWILIO_AUTH_TOKEN` and/or `ESS_SMS_GENERIC_SECRET` (at least one turns the
channel on); outbound `ESS_SMS_PROVIDER` (`twilio` or `log`, default `log` unless a Twilio
account is set), `ESS_SMS_TWILIO_ACCOUNT_SID`, `ESS_SMS_TWILIO_FROM`, `ESS_SMS_TWILIO_API_URL`;
`ESS_PUBLIC_URL` (how the internet reaches this service, for signatures and links).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import ClassVar

import structlog
from aiohttp import web

from bot.inbox import Arrival, InboxUnavailable
from bot.incident import Notification
from bot.render import Abilities, render_text
from bot.types import Ask, Inbound, Kind, Location, LocationSource, Reply, Text
from channels.base import (
    Card,
    Channel,
    ChannelContext,
    ChannelOff,
    Outbound,
    SendResult,
    optional_setting,
    own_address,
)
from channels.cards import card_for, card_text
from channels.sms.providers import (
    DEFAULT_TWILIO_API_URL,
    LogProvider,
    SmsProvider,
    TwilioProvider,
)
from channels.sms.segments import count_segments
from channels.webchat.pages import STATIC, locate_page
from config.settings import Settings, SettingsError

log = structlog.get_logger(__name__)

CHANNEL = "sms"
ABILITIES = Abilities(buttons=False, location=False)
USE_SENDER = "#"
MAX_SMS_TEXT = 1600  # Twilio's own cap for one message
LINK_SECONDS = 30 * 60
MAX_LINKS = 10_000
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
# The location page borrows the web chat's script, style and neutral icon.
LOCATE_FILES = {"locate.js": "text/javascript", "chat.css": "text/css",
                "neutral.svg": "image/svg+xml"}


def twilio_signature(token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's request signature: the URL, then each parameter name+value sorted by name."""
    data = url + "".join(k + v for k, v in sorted(params, key=lambda kv: kv[0]))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
                            ).decode()


def generic_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _plain(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class SmsChannel(Channel):
    """SMS through a gateway; the address is `sms:+66…`."""

    name: ClassVar[str] = CHANNEL
    abilities = ABILITIES

    def __init__(self, provider: SmsProvider, *, twilio_token: str = "",
                 generic_secret: str = "", public_url: str = "",
                 default_lang: str = "th") -> None:
        self.provider = provider
        self._twilio_token = twilio_token
        self._generic_secret = generic_secret
        self.public_url = public_url.rstrip("/")
        self.default_lang = default_lang
        self.opted_out: set[str] = set()
        self._links: OrderedDict[str, tuple[str, float]] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> SmsChannel:
        token = optional_setting(settings, "ESS_SMS_TWILIO_AUTH_TOKEN")
        secret = optional_setting(settings, "ESS_SMS_GENERIC_SECRET")
        if not token and not secret:
            raise ChannelOff("sms: neither ESS_SMS_TWILIO_AUTH_TOKEN nor "
                             "ESS_SMS_GENERIC_SECRET is set")
        sid = optional_setting(settings, "ESS_SMS_TWILIO_ACCOUNT_SID")
        kind = optional_setting(settings, "ESS_SMS_PROVIDER", "twilio" if sid else "log")
        provider: SmsProvider
        if kind == "log":
            provider = LogProvider()
        elif kind == "twilio":
            sender = optional_setting(settings, "ESS_SMS_TWILIO_FROM")
            if not (sid and token and sender):
                raise SettingsError("ESS_SMS_PROVIDER=twilio needs ESS_SMS_TWILIO_ACCOUNT_SID, "
                                    "ESS_SMS_TWILIO_AUTH_TOKEN and ESS_SMS_TWILIO_FROM")
            provider = TwilioProvider(sid, token, sender, optional_setting(
                settings, "ESS_SMS_TWILIO_API_URL", DEFAULT_TWILIO_API_URL))
        else:
            raise SettingsError(f"ESS_SMS_PROVIDER={kind!r} is not valid: expected twilio or log")
        return cls(provider, twilio_token=token, generic_secret=secret,
                   public_url=optional_setting(settings, "ESS_PUBLIC_URL"),
                   default_lang=settings.default_lang)

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/webhooks/sms/twilio", self.twilio_webhook)
        router.add_post("/webhooks/sms/generic", self.generic_webhook)
        router.add_get("/sms/locate/{nonce}", self.locate_page)
        router.add_get("/sms/static/{name}", self.locate_static)
        router.add_post("/sms/locate/{nonce}", self.locate_submit)

    async def start(self, ctx: ChannelContext) -> None:
        await super().start(ctx)
        await self.provider.open()

    async def stop(self) -> None:
        await self.provider.close()

    # -- inbound ----------------------------------------------------------------------------

    def _signed_url(self, request: web.Request) -> str:
        # Behind a proxy the URL Twilio signed is the public one, not what we see.
        if self.public_url:
            return self.public_url + request.rel_url.path_qs
        return str(request.url)

    async def twilio_webhook(self, request: web.Request) -> web.Response:
        if not self._twilio_token:
            return _plain(404, "twilio inbound is not configured")
        signature = request.headers.get("X-Twilio-Signature", "")
        form = await request.post()
        params = [(k, v) for k, v in form.items() if isinstance(v, str)]
        expected = twilio_signature(self._twilio_token, self._signed_url(request), params)
        if not signature or not hmac.compare_digest(expected, signature):
            log.warning("sms.twilio.bad_signature", present=bool(signature))
            return _plain(401, "invalid signature")
        sender, text, sid = form.get("From"), form.get("Body", ""), form.get("MessageSid")
        if not isinstance(sender, str) or not sender or not isinstance(sid, str) or not sid \
                or not isinstance(text, str):
            return _plain(400, "From, Body and MessageSid are required")
        if not await self._keep(Inbound(CHANNEL, sender, Kind.TEXT, f"twilio:{sid}", text)):
            return _plain(503, "cannot take messages now, retry")
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    async def generic_webhook(self, request: web.Request) -> web.Response:
        if not self._generic_secret:
            return _plain(404, "generic inbound is not configured")
        body = await request.read()
        signature = request.headers.get("X-ESS-Signature", "")
        if not signature or not hmac.compare_digest(
                generic_signature(self._generic_secret, body), signature):
            log.warning("sms.generic.bad_signature", present=bool(signature))
            return _plain(401, "invalid signature")
        try:
            data = json.loads(body)
            sender, text, message_id = data["from"], data["text"], data["id"]
            if not all(isinstance(v, str) and v for v in (sender, message_id)) \
                    or not isinstance(text, str):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return _plain(400, 'expected JSON {"id": str, "from": str, "text": str}')
        if not await self._keep(Inbound(CHANNEL, sender, Kind.TEXT, f"generic:{message_id}",
                                        text)):
            return _plain(503, "cannot take messages now, retry")
        return web.json_response({"accepted": True})

    async def _keep(self, inbound: Inbound) -> bool:
        """Into the inbound journal before the answer (bot.inbox); False: answer 5xx."""
        try:
            await self.ctx.services.inbox.accept([Arrival(inbound)])
        except InboxUnavailable:
            return False
        return True

    async def arrived(self, arrival: Arrival) -> None:
        inbound = arrival.inbound
        if inbound.kind is Kind.LOCATION:
            await self._answer(inbound)
        else:
            await self.handle(inbound.sender, inbound.text, inbound.event_id)

    async def handle(self, sender: str, text: str, event_id: str) -> None:
        """One SMS from `sender`: keywords first, then the engine; the answer as one SMS."""
        text = text[:MAX_SMS_TEXT]
        catalogs = self.ctx.services.catalogs
        word = " ".join(text.split()).casefold()
        replies: list[Reply]
        if word in catalogs.words("sms.words.stop"):
            self.opted_out.add(sender)
            replies = [Reply(Text("sms.stop"), self.default_lang)]
        elif word in catalogs.words("sms.words.start"):
            self.opted_out.discard(sender)
            replies = [Reply(Text("sms.start"), self.default_lang)]
        elif word in catalogs.words("sms.words.help"):
            replies = [Reply(Text("sms.help"), self.default_lang)]
        else:
            inbound = Inbound(CHANNEL, sender, Kind.PHONE, event_id, sender) \
                if word == USE_SENDER else Inbound(CHANNEL, sender, Kind.TEXT, event_id, text)
            replies = await self.ctx.services.engine.handle(inbound)
        if replies:
            result = await self.provider.send(sender, self.render(replies, sender),
                                              key=event_id)
            if not result.ok:
                log.error("sms.reply_failed", outcome=result.outcome.value, error=result.error)

    # -- rendering ----------------------------------------------------------------------------

    def render(self, replies: list[Reply], sender: str | None = None) -> str:
        """All replies as one text: fewer, fuller segments cost less and arrive in order."""
        catalogs = self.ctx.services.catalogs
        parts: list[str] = []
        for reply in replies:
            parts.append(render_text(reply, catalogs, ABILITIES))
            if reply.ask is Ask.LOCATION and sender and self.public_url:
                url = f"{self.public_url}/sms/locate/{self._new_link(sender)}"
                parts.append(catalogs.render(reply.lang, Text("sms.location_link",
                                                              {"url": url})))
            if reply.ask is Ask.PHONE and sender:
                parts.append(catalogs.render(reply.lang, Text("sms.phone_self")))
        body = "\n".join(parts)[:MAX_SMS_TEXT]
        segments = count_segments(body)
        log.info("sms.rendered", encoding=segments.encoding, segments=segments.count)
        return body

    # -- one-time location links ----------------------------------------------------------

    def _new_link(self, sender: str) -> str:
        nonce = secrets.token_urlsafe(16)
        self._links[nonce] = (sender, time.monotonic() + LINK_SECONDS)
        while len(self._links) > MAX_LINKS:
            self._links.popitem(last=False)
        return nonce

    def _link(self, nonce: str) -> str | None:
        entry = self._links.get(nonce)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    async def locate_page(self, request: web.Request) -> web.Response:
        lang = self.default_lang
        valid = self._link(request.match_info["nonce"]) is not None
        return web.Response(text=locate_page(self.ctx.services.catalogs, lang, valid,
                                             "/sms/static"),
                            content_type="text/html",
                            headers={"Cache-Control": "no-store",
                                     "Referrer-Policy": "no-referrer"})

    async def locate_static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in LOCATE_FILES:
            raise web.HTTPNotFound()
        return web.Response(body=(STATIC / name).read_bytes(), content_type=LOCATE_FILES[name],
                            headers={"X-Content-Type-Options": "nosniff"})

    async def locate_submit(self, request: web.Request) -> web.Response:
        nonce = request.match_info["nonce"]
        sender = self._link(nonce)
        if sender is None:
            return _plain(410, "this link has expired or was used")
        try:
            data = await request.json()
            lat, lon = float(data["lat"]), float(data["lon"])
            accuracy = float(data["accuracy"]) if data.get("accuracy") is not None else None
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return _plain(400, 'expected JSON {"lat": number, "lon": number}')
        inbound = Inbound(CHANNEL, sender, Kind.LOCATION, f"locate:{nonce}",
                          Location(lat, lon, LocationSource.DEVICE, accuracy))
        if not await self._keep(inbound):
            return _plain(503, "cannot take the location now, retry")
        self._links.pop(nonce, None)  # one time
        return web.json_response({"accepted": True})

    async def _answer(self, inbound: Inbound) -> None:
        replies = await self.ctx.services.engine.handle(inbound)
        if replies:
            await self.provider.send(inbound.sender, self.render(replies, inbound.sender),
                                     key=inbound.event_id)

    # -- outbound ---------------------------------------------------------------------------

    async def send(self, address: str, message: Outbound, *, key: str,
                   silent: bool = False) -> SendResult:
        """One SMS (a card becomes its lines of text)."""
        to = own_address(address, CHANNEL)
        if to is None:
            return SendResult.failed("not an SMS address")
        if to in self.opted_out:
            return SendResult.failed("recipient opted out (STOP)")
        catalogs = self.ctx.services.catalogs
        if isinstance(message, Notification):
            message = card_for(message, self.default_lang)
        if isinstance(message, Card):
            # No action menu: a number typed back would be read as a reporter's answer.
            text = "\n".join(card_text(message, catalogs))[:MAX_SMS_TEXT]
        else:
            text = self.render([message])
        return await self.provider.send(to, text, key=key)
