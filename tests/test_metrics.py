"""GET /metrics: counters and the outbox backlog, with nothing personal in them."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from bot.app import SERVICES, create_app
from bot.metrics import Metrics
from config.settings import Settings
from tests.helpers import choice, pin, start, text


def test_render_counters_and_gauges() -> None:
    m = Metrics()
    m.describe("x_total", "X")
    m.inc("x_total", channel="line", outcome="handled")
    m.inc("x_total", 2, channel="line", outcome="handled")
    out = m.render([("g", "G", 3)])
    assert 'x_total{channel="line",outcome="handled"} 3' in out
    assert "# TYPE g gauge\ng 3" in out


async def test_metrics_endpoint(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=str(tmp_path / "var"), log_format="console"))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        engine = client.app[SERVICES].engine
        await engine.handle(start("u"))
        await engine.handle(choice("u", "threat"))
        await engine.handle(pin("u"))
        await engine.handle(text("u", "081-234-5678"))
        send = choice("u", "send")
        await engine.handle(send)
        await engine.handle(send)  # a redelivery
        response = await client.get("/metrics")
        assert response.status == 200
        body = await response.text()
    assert 'ess_inbound_total{channel="test",outcome="handled"} 5' in body
    assert 'ess_inbound_total{channel="test",outcome="duplicate"} 1' in body
    assert 'ess_reports_total{outcome="received"} 1' in body
    assert "ess_outbox_pending " in body and "ess_ready 1" in body
    assert "ess_journal_pending 0" in body
    for needle in ("812345678", "16.82", "test:u", "ESS-"):
        assert needle not in body
