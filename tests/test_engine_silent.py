"""Silent reporting: taps only, neutral words, the silent flag on every reply."""

from __future__ import annotations

import re

import pytest

from bot.i18n import Catalogs
from bot.outbound import ResponderCard
from bot.services import Services
from bot.types import Reply, Text, utcnow
from routing.messages import outbound
from tests.helpers import choice, pin, receipts, start, text


def keys(replies: list[Reply]) -> list[str]:
    return [r.text.key for r in replies]


async def silent_report(services: Services, sender: str, callback: str,
                        first: str = "hint") -> list[Reply]:
    e = services.engine
    seen: list[Reply] = []
    if first == "hint":
        seen += await e.handle(start(sender, flow="silent"))
    elif first == "codeword":
        seen += await e.handle(text(sender, "ขอดูเมนูหน่อย"))
    seen += await e.handle(choice(sender, "go"))
    seen += await e.handle(choice(sender, "confinement"))
    seen += await e.handle(pin(sender))
    seen += await e.handle(choice(sender, callback))
    if callback == "yes":
        seen += await e.handle(text(sender, "0891234567"))
    return seen


@pytest.mark.parametrize("first", ["hint", "codeword"])
async def test_silent_report_text_only_by_taps(services: Services, first: str) -> None:
    replies = await silent_report(services, "s", "no", first)
    assert keys(replies) == ["silent.start.prompt", "silent.type.prompt",
                             "silent.location.prompt", "silent.callback.prompt",
                             "silent.waiting.prompt"]
    assert all(r.silent for r in replies)
    assert "common.greeting" not in keys(replies)
    [receipt] = await receipts(services.storage, "test:s")  # the outbox tells it, silently
    assert receipt.text.key == "silent.received" and receipt.silent
    incident = await services.storage.incidents.get(receipt.text.params["reference"])
    assert incident is not None
    assert (incident.silent, incident.do_not_call, incident.phone) == (True, True, None)
    notes = [n for n in await services.storage.outbox.claim("t", 50, 30, utcnow())
             if n.incident_id == incident.id and n.kind == "incident.new"]
    assert notes
    for note in notes:
        card = outbound(note)
        assert isinstance(card, ResponderCard)
        assert card.do_not_call is True and card.silent is True and card.callback is None
        # ...and the card itself must ring: responders must not miss a silent report.
        assert "silent" not in note.payload


async def test_silent_report_with_a_call_back_number(services: Services) -> None:
    replies = await silent_report(services, "s", "yes")
    assert "silent.phone.prompt" in keys(replies)
    [receipt] = await receipts(services.storage, "test:s")
    reference = receipt.text.params["reference"]
    incident = await services.storage.incidents.get(reference)
    assert incident is not None
    assert (incident.do_not_call, incident.phone) == (False, "+66891234567")


async def test_not_now_cancels_quietly(services: Services) -> None:
    e = services.engine
    await e.handle(start("s", flow="silent"))
    replies = await e.handle(choice("s", "cmd:cancel"))
    assert keys(replies) == ["common.cancelled"] and replies[0].silent
    assert await services.storage.incidents.recent() == []


async def test_i_am_safe_tells_responders_and_never_closes(services: Services) -> None:
    replies = await silent_report(services, "s", "no")
    reference = replies[4].text.params["reference"]
    pending = await services.storage.outbox.pending()
    replies = await services.engine.handle(choice("s", "safe"))
    assert keys(replies) == ["silent.safe_noted", "silent.waiting.prompt"]
    incident = await services.storage.incidents.get(reference)
    assert incident is not None
    assert incident.status == "new"
    assert incident.details["reporter_says_safe"] is True
    timeline = [e.kind for e in await services.storage.incidents.timeline(incident.id)]
    assert timeline == ["reported", "reporter_safe"]
    # Every responder who was notified hears it; none of them is told to close the incident.
    notified = incident.details["dispatch"]["notified"]
    assert await services.storage.outbox.pending() == pending + len(notified)


async def test_a_web_page_opened_with_silent_hint_starts_silently(services: Services) -> None:
    replies = await services.engine.handle(text("w", "hello", flow="silent"))
    assert keys(replies) == ["silent.start.prompt"] and replies[0].silent


# Words a lock-screen preview of a silent conversation must never show, per language: police,
# emergency, danger, report, abuse/assault, violence, help(!), incident. Every shipped language
# needs its list (the test below fails for a catalog without one).
ALARMING = {
    "th": ["ตำรวจ", "ฉุกเฉิน", "อันตราย", "แจ้งเหตุ", "ทำร้าย", "ช่วยด้วย", "ความรุนแรง"],
    "en": ["police", "emergency", "danger", "report", "abuse", "violence", "help", "incident"],
    "my": ["ရဲ", "အရေးပေါ်", "အန္တရာယ်", "သတင်းပို့", "တိုင်ကြား", "စော်ကား", "ရိုက်နှက်",
           "အကြမ်းဖက်", "ကယ်ပါ", "ဖြစ်ရပ်"],
    "km": ["ប៉ូលិស", "បន្ទាន់", "គ្រោះថ្នាក់", "រាយការណ៍", "រំលោភ", "វាយដំ", "ហិង្សា",
           "ជួយផង", "ហេតុការណ៍"],
    "lo": ["ຕຳຫຼວດ", "ສຸກເສີນ", "ອັນຕະລາຍ", "ແຈ້ງເຫດ", "ທຳຮ້າຍ", "ລ່ວງລະເມີດ", "ຄວາມຮຸນແຮງ",
           "ຊ່ວຍດ້ວຍ", "ເກີດເຫດ"],
}
SHIPPED = [lang.code for lang in Catalogs.load().languages]


@pytest.mark.parametrize("lang", SHIPPED)
def test_silent_wording_is_short_and_neutral(lang: str) -> None:
    """What a lock-screen preview can show must not alarm whoever holds the phone: the
    silent flow's own texts and the status updates a silent reporter gets."""
    assert lang in ALARMING, f"write the alarming words of {lang!r} first"
    catalogs = Catalogs.load()
    keys = sorted(k for k in catalogs.keys(lang)
                  if k.startswith(("silent.", "status.silent.")))
    assert len(keys) >= 25
    for key in keys:
        shown = catalogs.render(lang, Text(key, {"reference": "ESS-7K3F9", "asked": "ESS-7K3F9",
                                                 "minutes": 10, "text": "ok"}))
        assert len(shown) <= 60, (key, shown)
        for word in ALARMING[lang]:
            assert not re.search(word, shown, re.IGNORECASE), (key, word)


def test_the_alarming_word_check_can_fail() -> None:
    catalogs = Catalogs.load()
    for lang in ("my", "km", "lo"):
        # The catalog's own word for "police" must be on the list: the check would catch it.
        police = catalogs.render(lang, Text("agency.police"))
        assert any(re.search(word, police) for word in ALARMING[lang]), lang


async def test_storage_down_in_a_silent_report_stays_quiet_and_neutral(
        services: Services) -> None:
    e = services.engine
    await e.handle(start("s", flow="silent"))
    await e.handle(choice("s", "go"))
    await services.storage.close()
    replies = await e.handle(choice("s", "threat"))
    assert keys(replies) == ["silent.not_received"] and replies[0].silent
    # Not even the session could be read: the channel's silent hint decides.
    replies = await e.handle(text("t", "hi", flow="silent"))
    assert keys(replies) == ["silent.not_received"] and replies[0].silent


async def test_a_silent_reporter_writes_to_the_responders(services: Services) -> None:
    replies = await silent_report(services, "s", "no")
    reference = replies[4].text.params["reference"]
    queued = await services.storage.outbox.pending()
    replies = await services.engine.handle(text("s", "2 men, one has a gun"))
    assert keys(replies) == ["silent.relayed", "silent.waiting.prompt"]
    assert all(r.silent for r in replies)
    incident = await services.storage.incidents.get(reference)
    assert incident is not None and incident.status == "new"
    assert await services.storage.outbox.pending() == \
        queued + len(incident.details["dispatch"]["notified"])
