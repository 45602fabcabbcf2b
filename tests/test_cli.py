"""The `ess` command as a person runs it: real subprocesses, real files."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def ess(tmp: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": os.environ.get("PATH", ""), "ESS_DATA_DIR": str(tmp / "var"),
                "ESS_LOG_FORMAT": "json", **(env or {})}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], input=stdin,
                          capture_output=True, text=True, env=full_env, cwd=ROOT,
                          timeout=timeout, check=False)


def test_chat_makes_a_whole_report_and_prints_the_reference(tmp_path: Path) -> None:
    run = ess(tmp_path, "chat", "--lang", "en",
              stdin="1\n16.8211,100.2659\n081-234-5678\n1\n3\n")
    assert run.returncode == 0, run.stderr
    assert "1) Threatened with harm, or assaulted" in run.stdout
    assert "Check before sending" in run.stdout
    match = re.search(r"^reference: (ESS-\w{5})$", run.stdout, re.M)
    assert match, run.stdout
    listing = ess(tmp_path, "incidents", "list", "--json")
    assert listing.returncode == 0
    [item] = json.loads(listing.stdout)
    assert item["reference"] == match.group(1) and item["type"] == "threat"
    shown = ess(tmp_path, "incidents", "show", match.group(1).lower().replace("-", " "),
                "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["phone"] == "+66812345678"
    assert [e["kind"] for e in data["timeline"]] == ["reported"]


def test_chat_in_thai_silent(tmp_path: Path) -> None:
    run = ess(tmp_path, "chat", "--flow", "silent", stdin="1\n2\n13.7563,100.5018\n2\n")
    assert run.returncode == 0, run.stderr
    assert "ถูกกักขังหน่วงเหนี่ยว" in run.stdout
    assert re.search(r"^reference: ESS-\w{5}$", run.stdout, re.M)


@pytest.mark.parametrize(("args", "env", "message"), [
    (("incidents", "show", "ESS-XXXXX"), {}, "ess: no incident ESS-XXXXX"),
    (("chat", "--flow", "nope"), {}, "ess: no flow 'nope'"),
    (("chat", "--lang", "xx"), {}, "ess: no catalog for 'xx'"),
    (("serve",), {"ESS_PORT": "abc"}, "ess: ESS_PORT='abc' is not valid"),
    (("serve",), {"ESS_DATABASE_URL": "postgresql://127.0.0.1:1/x"}, "ess: "),
])
def test_user_errors_are_one_clear_line(tmp_path: Path, args: tuple[str, ...],
                                        env: dict[str, str], message: str) -> None:
    run = ess(tmp_path, *args, env=env)
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_starts_with_no_arguments_and_answers_health(tmp_path: Path) -> None:
    port = _free_port()
    env = {"PATH": os.environ.get("PATH", ""), "ESS_DATA_DIR": str(tmp_path / "var"),
           "ESS_PORT": str(port), "ESS_LOG_FORMAT": "json"}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"listening on http://127.0.0.1:{port}" in first
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as resp:
                    assert json.load(resp) == {"ready": True}
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("readyz never answered")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as resp:
            assert json.load(resp) == {"status": "ok"}
        assert (tmp_path / "var" / "ess.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_volunteer_registers_and_opens_a_case_through_ess_chat(tmp_path: Path) -> None:
    code = ess(tmp_path, "volunteers", "code", "--area", "6501")
    assert code.returncode == 0, code.stderr
    answers = [f"/register {code.stdout.strip()}", "1", "2499", "1", "1",
               "16.8211,100.2659", "3 7", "rice", "1", "1"]
    run = ess(tmp_path, "chat", "--flow", "volunteer_case", "--as", "vol1", "--lang", "en",
              stdin="\n".join(answers) + "\n")
    assert run.returncode == 0, run.stderr
    assert "อพม." in run.stdout  # the registration answer, in the service's language
    assert "Elderly allowance: aged" in run.stdout
    match = re.search(r"Case (CASE-\w{5}) is open", run.stdout)
    assert match, run.stdout
    listing = ess(tmp_path, "cases", "list", "--json")
    [item] = json.loads(listing.stdout)
    assert item["reference"] == match.group(1)
    assert item["flags"] == ["zero_dropout"] and item["area"] == "6501"
    zero = ess(tmp_path, "cases", "zero-dropout", "--area", "65", "--json")
    assert zero.returncode == 0, zero.stderr
    [child] = json.loads(zero.stdout)
    assert child["reference"] == match.group(1) and child["schooling"] == ["out_of_school"]
    elsewhere = ess(tmp_path, "cases", "zero-dropout", "--area", "50")
    assert elsewhere.returncode == 0 and "no Zero Dropout case in 50" in elsewhere.stdout
    assert "not an area" in ess(tmp_path, "cases", "zero-dropout", "--area", "99").stderr
    shown = ess(tmp_path, "cases", "show", match.group(1).lower(), "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["person"]["birth_year"] == 1956 and data["consent"]["ground"] == "consent"
    assert data["timeline"][0]["kind"] == "opened" and data["photos"] == 0
    moved = ess(tmp_path, "cases", "move", match.group(1), "close")
    assert moved.returncode == 2 and "a supervisor must approve" in moved.stderr
    moved = ess(tmp_path, "cases", "move", match.group(1), "close", "--supervisor")
    assert moved.returncode == 2 and "not allowed" in moved.stderr  # new: not closable yet
    assert ess(tmp_path, "cases", "show", "CASE-XXXXX").stderr.startswith("ess: no case")
    assert "not an area" in ess(tmp_path, "volunteers", "code", "--area", "99").stderr
