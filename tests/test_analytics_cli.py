"""`ess stats` over the hand-made history: every view, every form, suppressed; bad input
gets one clear line and exit status 2."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from datetime import UTC, datetime

import pytest

from bot.cli import main
from bot.stats_cli import STATS_BY
from config.settings import Settings
from storage.crypto import Sealer
from storage.factory import open_storage
from tests.analytics_history import T0, write_history

COUNTED = re.compile(r"^(count|previous|reports|.*_n|\d\d)$")  # columns holding counts
SMALL = {"1", "2", "3", "4"}
# From three days before the history's Monday to now: its period, not the one before.
DAYS = f"{(datetime.now(UTC) - T0).total_seconds() / 86400 + 3:.3f}"


@pytest.fixture
def history(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    async def write() -> None:
        storage = await open_storage(settings, Sealer([b"k" * 32]))
        try:
            await write_history(storage)
        finally:
            await storage.close()

    monkeypatch.setenv("ESS_DATA_DIR", settings.data_dir)
    for key in settings.__dataclass_fields__:
        monkeypatch.delenv(f"ESS_{key.upper()}", raising=False)
    monkeypatch.setenv("ESS_DATA_DIR", settings.data_dir)
    asyncio.run(write())
    return settings


def test_every_view_and_export_is_suppressed(history: Settings,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    for by in STATS_BY:
        args = ["stats", "--by", by, "--days", DAYS]
        assert main([*args, "--json"]) == 0, by
        data = json.loads(capsys.readouterr().out)
        # The two synthetic incidents were never closed: only the outcomes leave them out.
        synthetic = by != "outcome"
        assert data["synthetic_included"] is synthetic and data["threshold"] == 5
        for row in data["rows"]:
            for column, value in row.items():
                if COUNTED.match(column):
                    assert str(value) not in SMALL, (by, column, value)
        for form in ("--csv", "--hxl"):
            assert main([*args, form]) == 0
            captured = capsys.readouterr()
            table = list(csv.reader(io.StringIO(captured.out)))
            header, body = table[0], table[2 if form == "--hxl" else 1:]
            assert header[-1] == "synthetic_included"
            if form == "--hxl":
                assert all(tag.startswith("#") for tag in table[1])
            for line in body:
                assert line[-1] == str(synthetic).lower()
                for column, value in zip(header, line, strict=True):
                    if COUNTED.match(column):
                        assert value not in SMALL, (by, form, column, value)
            assert ("synthetic" in captured.err) is synthetic
        assert main(args) == 0
        assert ("NOTE: includes synthetic" in capsys.readouterr().out) is synthetic


def test_figures_and_drill_down(history: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--by", "type", "--days", DAYS, "--json"]) == 0
    rows = {r["type"]: r["count"] for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows == {"threat": 12, "sexual_risk": 8, "deranged": "x", "gathering": "<5"}
    assert main(["stats", "--by", "area", "--area", "65", "--days", DAYS, "--csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("6501,Mueang Phitsanulok,20,")
    assert main(["stats", "--by", "type", "--days", DAYS, "--min-count", "2", "--json"]) == 0
    rows = {r["type"]: r["count"] for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["gathering"] == 3
    assert main(["stats", "--by", "type", "--days", DAYS, "--exclude-synthetic", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["synthetic_included"] is False and data["total"] == 28


@pytest.mark.parametrize(("args", "message"), [
    (["--by", "nonsense"], "--by 'nonsense': expected one of"),
    (["--area", "99"], "'99' is not an area of the directory"),
    (["--days", "3650"], "at most 731"),
    (["--days", "-1"], "more than 0"),
    (["--min-count", "0"], "below 2"),
    (["--min-count", "-1"], "below 2"),
    (["--min-count", "1"], "below 2"),
    (["--type", "'; drop table"], "--type"),
])
def test_bad_input_is_one_clear_line(history: Settings, capsys: pytest.CaptureFixture[str],
                                     args: list[str], message: str) -> None:
    assert main(["stats", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_threshold_setting_below_two_is_refused(history: Settings,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    for value in ("0", "-1", "1"):
        monkeypatch.setenv("ESS_ANALYTICS_MIN_COUNT", value)
        assert main(["stats"]) == 2
        assert "ESS_ANALYTICS_MIN_COUNT" in capsys.readouterr().err
