"""Logs never carry a phone number, a location or message text in clear."""

from __future__ import annotations

import json

import pytest

from bot.logs import configure_logging, pseudonym, scrub_pii
from bot.services import Services
from tests.helpers import choice, pin, start, text


def test_scrub_is_a_pure_processor() -> None:
    event = {
        "event": "x", "phone": "+66812345678", "location": {"lat": 1}, "text": "help me",
        "sender": "U1234", "note": "call 081-234-5678 at 16.82110,100.26590",
        "nested": {"payload": "secret", "ok": 1}, "count": 3, "thai": "โทร ๐๘๑๒๓๔๕๖๗๘",
    }
    out = scrub_pii(None, "info", dict(event))
    assert out["phone"] == out["location"] == out["text"] == "<redacted>"
    assert out["sender"] == pseudonym("U1234")
    assert out["note"] == "call <phone> at <coords>"
    assert out["nested"] == {"payload": "<redacted>", "ok": 1}
    assert out["count"] == 3
    assert "๐๘๑" not in out["thai"]


async def test_a_whole_report_logs_nothing_personal(services: Services,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "debug")
    e = services.engine
    await e.handle(start("U4af4980629"))
    await e.handle(choice("U4af4980629", "threat"))
    await e.handle(text("U4af4980629", "help me please, he is outside the door"))
    await e.handle(pin("U4af4980629", 16.82113, 100.26594))
    await e.handle(text("U4af4980629", "081-234-5678"))
    await e.handle(choice("U4af4980629", "send"))
    await services.storage.close()
    await e.handle(text("U4af4980629", "0899999999 at 13.75631,100.50181"))  # fails: logged
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(line["event"] == "report.received" for line in lines)
    assert any(line["event"] == "engine.failed" for line in lines)
    for needle in ("812345678", "234-5678", "899999999", "16.8211", "100.2659", "13.7563",
                   "help me", "outside the door", "U4af4980629"):
        assert needle not in err, needle
