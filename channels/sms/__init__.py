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
sending number. A registered responder's cards and replies end with a numbered menu of the
actions allowed now, and a bare number picks from the last one sent (channels/sms/menus.py).
STOP / START / HELP are answered here, before any flow; STOP is kept in the
store (storage/ports.py `OptOuts`) before the webhook is answered, so it holds on every
process and across restarts, until START or UNSTOP. A sender over the rate limits
(channels/limits.py) gets HTTP 429 with Retry-After, before anything is accepted; STOP and
START are never limited.

Settings: `ESS_SMS_TWILIO_AUTH_TOKEN` and/or `ESS_SMS_GENERIC_SECRET` (at least one turns the
channel on); outbound `ESS_SMS_PROVIDER` (`twilio` or `log`, default `log` unless a Twilio
account is set), `ESS_SMS_TWILIO_ACCOUNT_SID`, `ESS_SMS_TWILIO_FROM`, `ESS_SMS_TWILIO_API_URL`;
`ESS_PUBLIC_URL` (how the internet reaches this service, for signatures and links).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import ClassVar

import structlog
from aiohttp import web

from bot.i18n import Catalogs
from bot.inbox import Arrival, InboxUnavailable
from bot.lang_pick import language_for_phone
from bot.outbound import Outbound, ResponderCard, SendResult
from bot.render import Abilities, card_alert, card_title, render_text
from bot.types import Ask, Inbound, Kind, Location, LocationSource, Reply, Text, utcnow
from channels.base import (
    Channel,
    ChannelContext,
    ChannelOff,
    optional_setting,
    own_address,
)
from channels.bodies import finite, load_json, secret_equal
from channels.limits import Gate, retry_after
from channels.sms import menus
from channels.sms.providers import (
    DEFAULT_TWILIO_API_URL,
    LogProvider,
    SmsProvider,
    TwilioProvider,
)
from channels.sms.segments import count_segments
from channels.web_pages import locate_page, static_file
from config.settings import Settings, SettingsError
from routing.geo import valid_point
from storage.ports import Menu

log = structlog.get_logger(__name__)

CHANNEL = "sms"
ABILITIES = Abilities(buttons=False, location=False)
USE_SENDER = "#"
MAX_SMS_TEXT = 1600  # Twilio's own cap for one message
SMS_CARD_SEGMENTS = 2  # a responder card's text, before its map link
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


def sms_card(card: ResponderCard, catalogs: Catalogs) -> str:
    """A responder card as one SMS: the text within two UCS-2 segments, then the map link.

    Lines are kept by importance (who it is and how to answer first); one that does not fit
    is cut, and read in the card's order."""
    def say(text: Text) -> str:
        return catalogs.render(card.lang, text)

    where = " ".join(p for p in (card.district, card.province) if p)
    if card.station:
        where = f"{where} → {card.station}" if where else card.station
    alert = card_alert(card)
    choices = card_menu(card)
    lines = [say(card_title(card)),  # in reading order, with their importance (0 first)
             say(Text("dispatch.card.drill")) if card.drill else "",
             say(card.escalation) if card.escalation else "",
             say(card.type),
             where or say(Text("dispatch.place_text", {"text": card.place_text or "-"})),
             say(alert) if alert else say(Text("dispatch.callback.phone",
                                                {"phone": card.callback})),
             menus.menu_line(choices, card.lang, catalogs) if choices else ""]
    # The menu is never cut: a number must mean what the responder reads.
    text = menus.fit(lines, [0, 1, 5, 3, 4, 1, -1], SMS_CARD_SEGMENTS)
    return f"{text}\n{card.map_url}" if card.map_url else text


def card_menu(card: ResponderCard) -> tuple[tuple[str, str], ...]:
    """The numbered menu a card's SMS ends with (as `sms_card` numbers it)."""
    return menus.actions((a.token, a.label) for a in card.actions)


# Replies whose text carries someone's own words are never cut to fit a menu beside them.
WHOLE_TEXTS = frozenset({"dispatch.relay"})


def responder_reply(reply: Reply, catalogs: Catalogs) -> str:
    """A reply that offers a responder actions: its text, then the numbered menu, within
    the card's budget (the text is shortened first; the menu never)."""
    text = catalogs.render(reply.lang, reply.text)
    line = menus.menu_line(menus.reply_actions(reply), reply.lang, catalogs)
    if reply.text.key in WHOLE_TEXTS:
        return f"{text}\n{line}"
    return menus.fit([text, line], [1, 0], SMS_CARD_SEGMENTS)


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
        self._gate: Gate | None = None
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
        self._gate = Gate(ctx.services.storage.limits, ctx.services.settings)
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
        if not signature or not secret_equal(expected, signature):
            log.warning("sms.twilio.bad_signature", present=bool(signature))
            return _plain(401, "invalid signature")
        sender, text, sid = form.get("From"), form.get("Body", ""), form.get("MessageSid")
        if not isinstance(sender, str) or not sender or not isinstance(sid, str) or not sid \
                or not isinstance(text, str):
            return _plain(400, "From, Body and MessageSid are required")
        if (refused := await self._admit(sender, text)) is not None:
            return refused
        if not await self._keep(Inbound(CHANNEL, sender, Kind.TEXT, f"twilio:{sid}", text)):
            return _plain(503, "cannot take messages now, retry")
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    async def generic_webhook(self, request: web.Request) -> web.Response:
        if not self._generic_secret:
            return _plain(404, "generic inbound is not configured")
        body = await request.read()
        signature = request.headers.get("X-ESS-Signature", "")
        if not signature or not secret_equal(generic_signature(self._generic_secret, body),
                                             signature):
            log.warning("sms.generic.bad_signature", present=bool(signature))
            return _plain(401, "invalid signature")
        try:
            data = load_json(body)
            sender, text, message_id = data["from"], data["text"], data["id"]
            if not all(isinstance(v, str) and v for v in (sender, message_id)) \
                    or not isinstance(text, str):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return _plain(400, 'expected JSON {"id": str, "from": str, "text": str}')
        if (refused := await self._admit(sender, text)) is not None:
            return refused
        if not await self._keep(Inbound(CHANNEL, sender, Kind.TEXT, f"generic:{message_id}",
                                        text)):
            return _plain(503, "cannot take messages now, retry")
        return web.json_response({"accepted": True})

    def _word(self, text: str) -> str:
        return " ".join(text[:MAX_SMS_TEXT].split()).casefold()

    async def _admit(self, sender: str, text: str) -> web.Response | None:
        """Before the 200: STOP and START recorded (never limited), as the answer promises;
        any other message counted against the limits (429 when over). None: accepted."""
        words = self.ctx.services.catalogs.words
        word = self._word(text)
        if word in words("sms.words.stop") or word in words("sms.words.start"):
            optouts, address = self.ctx.services.storage.optouts, f"{CHANNEL}:{sender}"
            try:
                if word in words("sms.words.stop"):
                    await optouts.stop(address, datetime.now(UTC))
                else:
                    await optouts.start(address)
            except Exception as exc:  # the store: the gateway sends it again
                log.warning("sms.optout_failed", error=type(exc).__name__)
                return _plain(503, "the service is briefly unavailable: try again")
            return None
        if self._gate is None:
            return None
        limit = await self._gate.sms(sender)
        if limit is None:
            return None
        wait = retry_after(limit)
        return web.json_response({"error": f"too many messages: try again in {wait} s"},
                                 status=429, headers={"Retry-After": str(wait)})

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
        word = self._word(text)
        # The sender's country calling code picks the language of a new conversation.
        lang = language_for_phone(sender, catalogs)
        hints = {"lang": lang} if lang else {}
        lang = lang or self.default_lang
        replies: list[Reply]
        # STOP and START were recorded before the webhook was answered (`_admit`).
        if word in catalogs.words("sms.words.stop"):
            replies = [Reply(Text("sms.stop"), lang)]
        elif word in catalogs.words("sms.words.start"):
            replies = [Reply(Text("sms.start"), lang)]
        elif word in catalogs.words("sms.words.help"):
            replies = [Reply(Text("sms.help"), lang)]
        elif (number := menus.bare_number(text)) is not None and \
                (menu := await self._menu(sender)) is not None:
            replies = await self._pick(sender, number, menu, event_id, hints)
        else:
            inbound = Inbound(CHANNEL, sender, Kind.PHONE, event_id, sender, hints=hints) \
                if word == USE_SENDER else Inbound(CHANNEL, sender, Kind.TEXT, event_id, text,
                                                   hints=hints)
            replies = await self.ctx.services.inbound.handle(inbound)
        if replies:
            result = await self.provider.send(sender, self.render(replies, sender),
                                              key=event_id)
            if not result.ok:
                log.error("sms.reply_failed", outcome=result.outcome.value, error=result.error)
            else:
                await self._remember(sender, replies)

    async def _menu(self, sender: str) -> Menu | None:
        """The last menu sent to a registered responder number; None for anyone else (a
        reporter's "1" answers their own conversation, also after /unregister)."""
        storage, address = self.ctx.services.storage, f"{CHANNEL}:{sender}"
        menu = await storage.menus.last(address)
        if menu is None or not await storage.bindings.for_address(address):
            return None
        return menu

    async def _pick(self, sender: str, number: int, menu: Menu, event_id: str,
                    hints: dict[str, str]) -> list[Reply]:
        """A bare number from an address that was sent a menu: the action it stands for,
        as if its button were tapped; an expired menu or a number not in it, said plainly."""
        if menu.expires_at <= utcnow():
            log.info("sms.menu_expired")
            return [Reply(Text("sms.menu.expired"), menu.lang),
                    Reply(Text("dispatch.help", {"reference": "ESS-…"}), menu.lang)]
        if not 1 <= number <= len(menu.choices):
            log.info("sms.menu_out_of_range", size=len(menu.choices))
            return [Reply(Text("sms.menu.out_of_range", {"number": number}), menu.lang,
                          menus.as_choices(menu))]
        token = menu.choices[number - 1][0]
        return await self.ctx.services.inbound.handle(
            Inbound(CHANNEL, sender, Kind.CHOICE, event_id, token, hints=hints))

    async def _remember(self, to: str, sent: Sequence[Outbound]) -> None:
        """The last menu in what was just sent to `to`, kept for a bare number sent back.
        Called once it was sent: a number must never pick from a menu never received."""
        offered = [(m.lang, card_menu(m) if isinstance(m, ResponderCard)
                    else menus.reply_actions(m)) for m in sent]
        offered = [(lang, choices) for lang, choices in offered if choices]
        if offered:
            lang, choices = offered[-1]
            await self.ctx.services.storage.menus.remember(
                f"{CHANNEL}:{to}", menus.new_menu(choices, lang, utcnow()))

    # -- rendering ----------------------------------------------------------------------------

    def render(self, replies: list[Reply], sender: str | None = None) -> str:
        """All replies as one text: fewer, fuller segments cost less and arrive in order."""
        catalogs = self.ctx.services.catalogs
        parts: list[str] = []
        for reply in replies:
            if menus.reply_actions(reply):
                parts.append(responder_reply(reply, catalogs))
                continue
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
        sender = self._link(request.match_info["nonce"])
        valid = sender is not None
        lang = (language_for_phone(sender, self.ctx.services.catalogs) if sender else None) \
            or self.default_lang
        return web.Response(text=locate_page(self.ctx.services.catalogs, lang, valid,
                                             "/sms/static"),
                            content_type="text/html",
                            headers={"Cache-Control": "no-store",
                                     "Referrer-Policy": "no-referrer"})

    async def locate_static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in LOCATE_FILES:
            raise web.HTTPNotFound()
        return web.Response(body=static_file(name), content_type=LOCATE_FILES[name],
                            headers={"X-Content-Type-Options": "nosniff"})

    async def locate_submit(self, request: web.Request) -> web.Response:
        nonce = request.match_info["nonce"]
        sender = self._link(nonce)
        if sender is None:
            return _plain(410, "this link has expired or was used")
        try:
            data = load_json(await request.read())
            lat, lon = finite(data["lat"]), finite(data["lon"])
            accuracy = finite(data.get("accuracy"))
            if lat is None or lon is None or not valid_point(lat, lon):
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
        replies = await self.ctx.services.inbound.handle(inbound)
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
        try:
            stopped = await self.ctx.services.storage.optouts.stopped(address)
        except Exception as exc:  # unknown: never send to someone who may have said STOP
            return SendResult.retry(5.0, type(exc).__name__)
        if stopped:
            return SendResult.failed("recipient opted out (STOP)")
        if isinstance(message, ResponderCard):
            text = sms_card(message, self.ctx.services.catalogs)
        else:
            text = self.render([message])
        result = await self.provider.send(to, text, key=key)
        if result.ok:
            await self._remember(to, [message])
        return result
