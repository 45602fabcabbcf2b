"""`ess line richmenu` and `ess groups code`, run as the real command."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from config.settings import Settings
from storage.factory import make_sealer, open_storage
from tests.line_standin import TOKEN, LineStandIn


async def ess(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_richmenu_is_installed_as_default(line_api: LineStandIn, tmp_path: Path) -> None:
    env = {"ESS_DATA_DIR": str(tmp_path), "ESS_LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
           "ESS_LINE_API_URL": line_api.url, "ESS_LINE_DATA_API_URL": line_api.url}
    code, out, err = await ess("line", "richmenu", env=env)
    assert code == 0, err
    assert [c.kind for c in line_api.calls] == ["richmenu", "image", "default"]
    menu = line_api.calls[0].raw
    assert [a["action"]["data"] for a in menu["areas"]] == [
        "menu:report", "menu:silent", "menu:mine", "menu:help"]
    assert all("displayText" not in a["action"] for a in menu["areas"])
    assert line_api.calls[1].headers["Content-Type"] == "image/png"
    assert "installed" in out and line_api.invalid == []


async def test_richmenu_needs_a_token(tmp_path: Path) -> None:
    code, _, err = await ess("line", "richmenu", env={"ESS_DATA_DIR": str(tmp_path)})
    assert code == 2 and "ESS_LINE_CHANNEL_ACCESS_TOKEN" in err


async def test_groups_code_prints_a_code_that_binds_once(tmp_path: Path) -> None:
    code, out, err = await ess("groups", "code", "--area", "65", "--agency", "police",
                               env={"ESS_DATA_DIR": str(tmp_path)})
    assert code == 0, err
    binding_code = out.strip()
    assert len(binding_code) == 8 and "/register" in err
    settings = Settings(data_dir=str(tmp_path))
    storage = await open_storage(settings, make_sealer(settings))
    try:
        now = datetime.now(UTC)
        binding = await storage.bindings.redeem(binding_code, "line:Cgroup", now)
        assert binding is not None and binding.area == "65"
        assert await storage.bindings.redeem(binding_code, "line:Cother", now) is None
    finally:
        await storage.close()


async def test_groups_code_refuses_an_area_the_directory_does_not_know(tmp_path: Path) -> None:
    code, _, err = await ess("groups", "code", "--area", "TH-65", "--agency", "police",
                             env={"ESS_DATA_DIR": str(tmp_path)})
    assert code == 2
    assert "--area 'TH-65' is not an area of the directory" in err


async def test_an_operator_acts_from_the_terminal(tmp_path: Path) -> None:
    from bot.wiring import open_services
    from tests.dispatch_kit import report

    settings = Settings(data_dir=str(tmp_path))
    services = await open_services(settings)
    try:
        incident = await report(services, "u1")
    finally:
        await services.close()
    env = {"ESS_DATA_DIR": str(tmp_path)}
    code, out, err = await ess("respond", incident.reference, "ack", env=env)
    assert code == 0, err
    assert incident.reference in out and "queued" in err
    code, out, _ = await ess("respond", incident.reference, "eta", "๑๐", env=env)  # Thai digits
    assert code == 0 and "10" in out
    code, out, _ = await ess("respond", incident.reference, "dance", env=env)
    assert code == 0 and "ESS-7K3F9 รับ" in out  # the command list, not a trace
    code, out, _ = await ess("respond", incident.reference, "resolved", "--as",
                             "console:st5001", env=env)
    assert code == 0 and "ไม่ได้รับแจ้ง" in out  # not notified: refused, clearly
    code, _, err = await ess("respond", "ESS-XXXXX", "ack", env=env)
    assert code == 2 and "no incident ESS-XXXXX" in err
    storage = await open_storage(settings, make_sealer(settings))
    try:
        stored = await storage.incidents.get(incident.reference)
        assert stored is not None and stored.status == "en_route"
    finally:
        await storage.close()
