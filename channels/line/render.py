"""Channel-neutral replies and cards as LINE message objects (the SDK's models).

Choices become quick-reply postback buttons (LINE shows at most 13, labels at most 20
characters); when a label does not fit, the full labels are also written in the message as a
numbered list, so nothing is hidden and a typed number still works. The location step gets a
`LocationAction` quick reply. In a silent conversation the buttons carry no `displayText`, so
a tap leaves no bubble of the reporter's words in the chat.
"""

from __future__ import annotations

from typing import Any

from linebot.v3.messaging import (
    FlexBox,
    FlexBubble,
    FlexButton,
    FlexMessage,
    FlexSeparator,
    FlexText,
    PostbackAction,
    TextMessage,
    URIAction,
)

from bot.i18n import Catalogs
from bot.outbound import ResponderCard
from bot.render import Abilities, card_alert, card_facts, card_title, choice_lines
from bot.types import Ask, Reply, Text

MAX_QUICK_REPLIES = 13
MAX_LABEL = 20
MAX_DISPLAY_TEXT = 300
MAX_DATA = 300
MAX_TEXT = 5000
MAX_ALT_TEXT = 400
MAX_MESSAGES_PER_REQUEST = 5
ABILITIES = Abilities(buttons=True, location=True, max_buttons=MAX_QUICK_REPLIES)


def _label(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Prompts without parameters (most of a report's replies) are rendered, validated and
# turned into LINE's JSON once per catalog set (the key holds the Catalogs itself, so a
# freed one's id is never reused): the SDK's models cost more than anything else in a reply.
# A reply with parameters (a summary, a reference) may hold personal data and is never kept.
_PROMPTS: dict[tuple[Any, ...], tuple[TextMessage, dict[str, Any]]] = {}
MAX_CACHED_PROMPTS = 2048


def _prompt_key(reply: Reply, catalogs: Catalogs) -> tuple[Any, ...] | None:
    if reply.text.params or any(c.label.params for c in reply.choices):
        return None
    return (catalogs, reply.text.key, reply.lang, reply.ask, reply.silent,
            tuple((c.value, c.label.key) for c in reply.choices))


def _prompt(reply: Reply, catalogs: Catalogs) -> tuple[TextMessage, dict[str, Any]] | None:
    key = _prompt_key(reply, catalogs)
    if key is None:
        return None
    cached = _PROMPTS.get(key)
    if cached is None:
        if len(_PROMPTS) >= MAX_CACHED_PROMPTS:
            _PROMPTS.clear()
        message = _reply_message(reply, catalogs)
        cached = _PROMPTS[key] = (message, message.to_dict())
    return cached


def reply_message(reply: Reply, catalogs: Catalogs) -> TextMessage:
    """One reply as a text message with its quick replies."""
    cached = _prompt(reply, catalogs)
    return cached[0] if cached is not None else _reply_message(reply, catalogs)


def reply_body(reply: Reply, catalogs: Catalogs) -> dict[str, Any]:
    """One reply as LINE's JSON (shared when it is a prompt: never mutate). A prompt's is
    what the SDK's model made of it; a reply with parameters is built as plain JSON of the
    same shape, without the models, which cost more than the rest of a reply
    (tests/test_line.py holds the two equal; the LINE stand-in validates every request)."""
    cached = _prompt(reply, catalogs)
    return cached[1] if cached is not None else _reply_json(reply, catalogs)


def _reply_message(reply: Reply, catalogs: Catalogs) -> TextMessage:
    message = TextMessage.from_dict(_reply_json(reply, catalogs))
    assert message is not None
    return message


def _reply_json(reply: Reply, catalogs: Catalogs) -> dict[str, Any]:
    body = catalogs.render(reply.lang, reply.text)
    labels = [catalogs.render(reply.lang, c.label) for c in reply.choices]
    slots = MAX_QUICK_REPLIES - (1 if reply.ask is Ask.LOCATION else 0)
    items: list[dict[str, Any]] = []
    if reply.ask is Ask.LOCATION:
        items.append({"type": "action", "action": {"type": "location", "label": _label(
            catalogs.render(reply.lang, Text("line.location_button")))}})
    fits = len(reply.choices) <= slots and all(len(x.value) <= MAX_DATA for x in reply.choices)
    if reply.choices and (not fits or any(len(label) > MAX_LABEL for label in labels)):
        body += "\n" + "\n".join(choice_lines(reply, catalogs))
    if fits:
        for i, (choice, label) in enumerate(zip(reply.choices, labels, strict=True), 1):
            short = label if len(label) <= MAX_LABEL else _label(f"{i}) {label}")
            action = {"type": "postback", "label": short, "data": choice.value}
            if not reply.silent:  # a silent tap leaves no bubble of the reporter's words
                action["displayText"] = _cut(label, MAX_DISPLAY_TEXT)
            items.append({"type": "action", "action": action})
    message: dict[str, Any] = {"type": "text", "text": _cut(body, MAX_TEXT)}
    if items:
        message["quickReply"] = {"items": items}
    return message


def reply_bodies(replies: list[Reply], catalogs: Catalogs) -> list[dict[str, Any]]:
    """The replies as LINE's JSON, ready for a reply or push body."""
    return [reply_body(r, catalogs) for r in replies]


def batches(messages: list[Any]) -> list[list[Any]]:
    """LINE takes at most five messages per reply or push."""
    return [messages[i:i + MAX_MESSAGES_PER_REQUEST]
            for i in range(0, len(messages), MAX_MESSAGES_PER_REQUEST)]


def card_message(card: ResponderCard, catalogs: Catalogs) -> FlexMessage:
    """A responder card as a Flex bubble: the alert first (a drill, DO NOT CALL), the title
    (an escalation says so in red), the facts, then the allowed actions and the map."""
    def render(text: Text) -> str:
        return catalogs.render(card.lang, text)

    title = render(card_title(card))
    alerts = [t for t in (Text("dispatch.card.drill") if card.drill else None,
                          card_alert(card)) if t is not None]
    body: list[Any] = [FlexText(text=render(a), wrap=True, weight="bold", color="#B00020",
                                size="md") for a in alerts]
    body.append(FlexText(text=title, wrap=True, weight="bold", size="lg",
                         color="#B00020" if card.escalated else None))
    body.append(FlexSeparator())
    body += [FlexText(text=render(line), wrap=True, size="sm") for line in card_facts(card)]
    buttons: list[Any] = []
    for action in card.actions:
        buttons.append(FlexButton(
            action=PostbackAction(label=_label(render(action.label)), data=action.token),
            style="primary" if not buttons else "secondary", height="sm"))
    if card.map_url:
        buttons.append(FlexButton(action=URIAction(
            label=_label(render(Text("dispatch.card.map_button"))), uri=card.map_url),
            style="link", height="sm"))
    bubble = FlexBubble(
        body=FlexBox(layout="vertical", spacing="sm", contents=body),
        footer=FlexBox(layout="vertical", spacing="sm", contents=buttons) if buttons else None)
    alt = " ".join(render(t) for t in (*alerts, card_title(card)))
    return FlexMessage(alt_text=_cut(alt, MAX_ALT_TEXT), contents=bubble)
