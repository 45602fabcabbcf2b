"""SMS: the language from the sender's country prefix, and "my reports" by a word."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.app import SERVICES
from bot.i18n import Catalogs
from bot.types import Text, utcnow
from tests.test_sms import TwilioStandIn, client, sms, twilio  # noqa: F401 - fixtures

CATALOGS = Catalogs.load()


def said(lang: str, key: str) -> str:
    return CATALOGS.render(lang, Text(key)).split("{")[0].strip()


@pytest.mark.parametrize(("sender", "lang"), [
    ("+959420012345", "my"), ("+85512345678", "km"), ("+8562055512345", "lo"),
    ("+66812345678", "th"), ("+447700900123", "th"),  # no catalog claims +44: the default
])
async def test_the_country_prefix_picks_the_language(
        client: TestClient[Any, Any], twilio: tuple[TwilioStandIn, str], sender: str,  # noqa: F811
        lang: str) -> None:
    standin, _ = twilio
    await sms(client, "hello", sender=sender)
    first = standin.texts()[-1]
    assert first.startswith(CATALOGS.render(lang, Text("common.greeting")))
    assert said(lang, "report.type.prompt") in first
    await sms(client, "1", sender=sender)
    assert said(lang, "report.location.prompt") in standin.texts()[-1]


async def test_my_reports_by_sms_and_the_silent_exclusion(
        client: TestClient[Any, Any], twilio: tuple[TwilioStandIn, str]) -> None:  # noqa: F811
    standin, _ = twilio
    me = "+855987654321"
    services = client.app[SERVICES]
    # A silent report first, started by the code word.
    for body in ("ขอดูเมนูหน่อย", "1", "2", "Phsar Thmei market, Bangkok", "2"):
        await sms(client, body, sender=me)
    [hidden] = await services.storage.incidents.recent()
    assert hidden.silent
    # Inside the silent conversation: neither word lists anything.
    for word in ("MY", "របស់ខ្ញុំ"):
        await sms(client, word, sender=me)
        assert said("km", "mine.title") not in standin.texts()[-1]
        assert said("km", "common.command_unavailable") in standin.texts()[-1]
    # The reference it was given: the status only, in the neutral words.
    await sms(client, hidden.reference.replace("-", " ").lower(), sender=me)
    assert standin.texts()[-1].startswith(CATALOGS.render(
        "km", Text("status.silent.dispatched", {"reference": hidden.reference})))
    # Later, the silent conversation gone idle, a plain report from the same phone.
    assert await services.storage.sessions.sweep_idle(utcnow() + timedelta(hours=5)) == 1
    for body in ("hello", "1", "Phsar Thmei market, Bangkok", "0812345678", "1", "3"):
        await sms(client, body, sender=me)
    plain = next(i for i in await services.storage.incidents.recent() if not i.silent)
    await sms(client, "MY", sender=me)
    listing = standin.texts()[-1]
    assert said("km", "mine.title") in listing
    assert plain.reference in listing and hidden.reference not in listing
    assert "0812345678" not in listing and "Phsar" not in listing  # nothing personal
    await sms(client, "ของฉัน", sender=me)  # the Thai word works for a Khmer reporter
    assert plain.reference in standin.texts()[-1]
