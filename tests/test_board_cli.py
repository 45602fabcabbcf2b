"""`ess staff` as an administrator runs it: the command's own entry point (one real
subprocess for the whole path, the rest in-process: each `ess` start costs seconds), the
real store."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.types import utcnow
from channels.board import totp
from config.settings import Settings
from storage.factory import make_sealer, open_storage
from tests.test_cli import ess


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> object:
    monkeypatch.setenv("ESS_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("ESS_LOG_FORMAT", "json")

    def ess_in_process(tmp: Path, *args: str, stdin: str = ""
                       ) -> subprocess.CompletedProcess[str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(list(args))
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return ess_in_process


def test_staff_add_list_reset_disable(tmp_path: Path, run: object) -> None:
    ess_: Any = run
    added = ess(tmp_path, "staff", "add", "somchai", "--role", "supervisor", "--area", "65",
                "6501", "--agency", "police", "--name", "Somchai P.", "--lang", "en")
    assert added.returncode == 0, added.stderr
    link = re.search(r"/board/password\?token=([\w-]+)$", added.stdout, re.M)
    assert link, added.stdout
    admin = ess_(tmp_path, "staff", "add", "root", "--admin", "--password-stdin",
                stdin="a long enough password\n")
    assert admin.returncode == 0 and "token=" not in admin.stdout
    listing = ess_(tmp_path, "staff", "list")
    assert "somchai\tSomchai P.\tsupervisor\t65,6501\tpolice\ten\tactive" in listing.stdout
    assert "root\troot\tadmin\tTH\t-\tth\tactive" in listing.stdout

    again = ess_(tmp_path, "staff", "add", "somchai", "--role", "responder", "--area", "65")
    assert again.returncode == 2 and "taken" in again.stderr
    short = ess_(tmp_path, "staff", "add", "x", "--role", "admin", "--area", "TH",
                "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "10 to 256" in short.stderr
    assert ess_(tmp_path, "staff", "add", "y", "--area", "65").returncode == 2  # no role
    assert ess_(tmp_path, "staff", "add", "bad login!", "--admin").returncode == 2

    reset = ess_(tmp_path, "staff", "reset", "somchai")
    assert reset.returncode == 0 and "token=" in reset.stdout

    async def tokens() -> tuple[str | None, str | None]:
        storage = await open_storage(*(lambda s: (s, make_sealer(s)))(
            Settings(data_dir=str(tmp_path / "var"))))
        try:
            first = await storage.staff.redeem_token(link.group(1), utcnow())
            newer = reset.stdout.strip().rsplit("token=", 1)[1]
            return first, await storage.staff.redeem_token(newer, utcnow())
        finally:
            await storage.close()

    assert asyncio.run(tokens()) == (None, "somchai")  # a reset replaces the earlier link
    disabled = ess_(tmp_path, "staff", "disable", "somchai")
    assert disabled.returncode == 0 and "every session ended" in disabled.stdout
    assert "somchai\tSomchai P.\tsupervisor\t65,6501\tpolice\ten\tdisabled" in \
        ess_(tmp_path, "staff", "list").stdout
    assert ess_(tmp_path, "staff", "disable", "nobody").returncode == 2
    assert ess_(tmp_path, "staff", "reset", "somchai").returncode == 2


def test_staff_totp_prints_the_secret_once_and_keeps_it_sealed(tmp_path: Path,
                                                              run: object) -> None:
    ess_: Any = run
    assert ess_(tmp_path, "staff", "add", "somchai", "--role", "supervisor", "--area",
                "65").returncode == 0
    enrolled = ess_(tmp_path, "staff", "totp", "somchai")
    assert "ess staff totp dao" in ess_(tmp_path, "staff", "add", "dao", "--role",
                                        "supervisor", "--area", "65").stdout
    assert "one-time code" not in ess_(tmp_path, "staff", "add", "nok", "--role",
                                       "responder", "--area", "65").stdout
    assert enrolled.returncode == 0, enrolled.stderr
    uri = re.search(r"^otpauth://totp/ESS%20Board%3Asomchai\?secret=([A-Z2-7]+)&",
                    enrolled.stdout, re.M)
    assert uri and f"secret: {uri.group(1)}" in enrolled.stdout
    assert uri.group(1) not in ess_(tmp_path, "staff", "list").stdout

    async def stored() -> bytes | None:
        settings = Settings(data_dir=str(tmp_path / "var"))
        storage = await open_storage(settings, make_sealer(settings))
        try:
            return await storage.staff.totp_secret("somchai")
        finally:
            await storage.close()

    secret = asyncio.run(stored())
    assert secret is not None and totp.secret_text(secret) == uri.group(1)
    assert uri.group(1).encode() not in b"".join(
        p.read_bytes() for p in (tmp_path / "var").rglob("*") if p.is_file())
    assert secret not in b"".join(
        p.read_bytes() for p in (tmp_path / "var").rglob("*") if p.is_file())
    removed = ess_(tmp_path, "staff", "totp", "somchai", "--remove")
    assert removed.returncode == 0 and asyncio.run(stored()) is None
    assert ess_(tmp_path, "staff", "totp", "nobody").returncode == 2
