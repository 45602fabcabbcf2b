"""The PDPA commands as an officer runs them: real subprocesses, a real SQLite file."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from tests.test_cli import ess

REPORT = "1\n16.8211,100.2659\n081-234-5678\n1\n3\n"


def report(tmp: Path, conversation: str = "cli:local") -> str:
    run = ess(tmp, "chat", "--lang", "en", stdin=REPORT)
    assert run.returncode == 0, run.stderr
    match = re.search(r"^reference: (ESS-\w{5})$", run.stdout, re.M)
    assert match, run.stdout
    return match.group(1)


def test_audit_verify_and_show(tmp_path: Path) -> None:
    reference = report(tmp_path)
    assert ess(tmp_path, "incidents", "show", reference).returncode == 0
    assert ess(tmp_path, "incidents", "show", reference).returncode == 0
    ok = ess(tmp_path, "audit", "verify")
    assert ok.returncode == 0 and "intact: 2 row(s)" in ok.stdout, ok.stderr
    shown = ess(tmp_path, "audit", "show", "--reference", reference, "--json")
    assert [r["action"] for r in json.loads(shown.stdout)] == ["incident.show"] * 2
    conn = sqlite3.connect(tmp_path / "var" / "ess.db")
    conn.executescript("DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'nobody' "
                       "WHERE seq = 1;")
    conn.close()
    broken = ess(tmp_path, "audit", "verify")
    assert broken.returncode == 1
    assert "BROKEN at row 1" in broken.stderr and "edited" in broken.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("audit", "show"), "ess: audit show needs --subject, --staff or --reference"),
    (("audit", "show", "--staff", "x", "--limit", "0"), "ess: --limit must be at least 1"),
])
def test_bad_arguments_are_one_clear_line(tmp_path: Path, args: tuple[str, ...],
                                          message: str) -> None:
    run = ess(tmp_path, *args)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [message]
