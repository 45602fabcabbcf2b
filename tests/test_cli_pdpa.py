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


def test_audit_verify_names_a_removed_tail_and_takes_a_noted_head(tmp_path: Path) -> None:
    reference = report(tmp_path)
    for _ in range(3):
        assert ess(tmp_path, "incidents", "show", reference).returncode == 0
    ok = ess(tmp_path, "audit", "verify")
    noted = re.search(r"note it as --head (3:[0-9a-f]{16})\)", ok.stdout)
    assert ok.returncode == 0 and noted, ok.stdout
    assert ess(tmp_path, "audit", "verify", "--head", noted.group(1)).returncode == 0
    conn = sqlite3.connect(tmp_path / "var" / "ess.db")
    conn.executescript("DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq > 1;")
    conn.close()
    broken = ess(tmp_path, "audit", "verify")
    assert broken.returncode == 1
    assert "BROKEN at row 2: rows 2…3 missing" in broken.stderr, broken.stderr
    # The anchor file removed as well: the head noted elsewhere still names the tail.
    (tmp_path / "var" / "ess.db.audit-head").unlink()
    assert ess(tmp_path, "audit", "verify").returncode == 0
    noted_again = ess(tmp_path, "audit", "verify", "--head", noted.group(1))
    assert noted_again.returncode == 1 and "rows 2…3 missing" in noted_again.stderr
    bad = ess(tmp_path, "audit", "verify", "--head", "three")
    assert bad.returncode == 2 and bad.stderr.startswith("ess: --head: expected SEQ:HASH")


@pytest.mark.parametrize(("args", "message"), [
    (("audit", "show"), "ess: audit show needs --subject, --staff or --reference"),
    (("audit", "show", "--staff", "x", "--limit", "0"), "ess: --limit must be at least 1"),
    (("subject", "find"), "ess: name the subject with exactly one of --phone, --line-user, "
                          "--reference or --case"),
    (("subject", "find", "--phone", "12", "--line-user", "U1"),
     "ess: name the subject with exactly one of --phone, --line-user, --reference or --case"),
    (("subject", "find", "--phone", "hello"),
     "ess: --phone: not a Thai phone number: 5 character(s) given"),
    (("subject", "find", "--line-user", "bob"),
     "ess: --line-user: a LINE user id is U followed by 32 hex characters"),
    (("subject", "find", "--reference", "ESS-XXXXX"), "ess: no incident ESS-XXXXX"),
    (("subject", "find", "--case", "7K3F9"), "ess: --case: a case reference looks like"),
    (("subject", "find", "--case", "CASE-XXXXX"), "ess: no case CASE-XXXXX"),
    (("subject", "erase", "--phone", "0812345678", "--reason", "x"),
     "ess: erasing 0 record(s) of subject S-"),
    (("subject", "request", "access", "--phone", "0812345678", "--received", "soon"),
     "ess: --received 'soon': expected a date such as 2026-11-30"),
    (("subject", "refuse", "R-nothing", "--reason", "x"), "ess: no request R-nothing"),
    (("subject", "export", "--phone", "0812345678", "--out", "/nonexistent/x.ess"),
     "ess: --out /nonexistent/x.ess: no such folder"),
    (("subject", "unseal", "/nonexistent/x.ess"),
     "ess: /nonexistent/x.ess: No such file or directory"),
    (("pdpa", "due", "--days", "-1"), "ess: --days: a number of days between 0 and 3650"),
    (("breach", "open"), "ess: breach open needs --keys or --since"),
    (("breach", "open", "--keys", "zz"), "ess: --keys: key ids are 16 hex characters"),
    (("breach", "open", "--since", "yesterday"), "ess: --since 'yesterday': expected a date"),
    (("pdpa", "record", "--out", "/nonexistent/r.md"), "ess: --out /nonexistent/r.md: No such"),
])
def test_bad_arguments_are_one_clear_line(tmp_path: Path, args: tuple[str, ...],
                                          message: str) -> None:
    run = ess(tmp_path, *args)
    assert run.returncode == 2, run.stderr
    # The structured log shares stderr (JSON here): an audited look-up before the refusal
    # logs its new audit head (`audit.head`); what the person reads is one line.
    logged = [json.loads(x) for x in run.stderr.splitlines() if x.startswith("{")]
    assert {entry["event"] for entry in logged} <= {"audit.head"}
    [line] = [x for x in run.stderr.strip().splitlines() if not x.startswith("{")]
    assert line.startswith(message)


def _vault_wrapped(tmp: Path) -> list[bytes]:
    db = sqlite3.connect(tmp / "var" / "ess-keys.db")
    try:
        return [bytes(r[0]) for r in db.execute("SELECT wrapped FROM data_keys "
                                                "WHERE wrapped IS NOT NULL")]
    finally:
        db.close()


def figures(stats_json: str) -> dict[str, object]:
    """`ess stats --json` without its period, which moves with the clock between two calls."""
    figures = json.loads(stats_json)
    figures.pop("since")
    figures.pop("until")
    return dict(figures)


def test_find_export_erase_and_a_backup_holds_nothing_readable(tmp_path: Path) -> None:
    import base64
    import shutil

    from bot.privacy.sealed_export import open_export
    from storage.crypto import Sealer, SealError, parse_keys

    reference = report(tmp_path)
    other = report(tmp_path)  # the same phone: the same subject
    stats = figures(ess(tmp_path, "stats", "--json").stdout)
    found = ess(tmp_path, "subject", "find", "--phone", "081 234 5678", "--json")
    assert found.returncode == 0, found.stderr
    listed = json.loads(found.stdout)
    assert {r["reference"] for r in listed["records"]} == {reference, other,
                                                           "terminal conversation"}
    subject = listed["subject"]

    out = tmp_path / "export.ess"
    exported = ess(tmp_path, "subject", "export", "--reference", reference, "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    assert b"+66812345678" not in out.read_bytes()
    password = exported.stdout.strip().rsplit(" ", 1)[-1]
    data = open_export(out.read_bytes(), password)
    incidents = {r["reference"]: r["data"] for r in data["records"] if r["kind"] == "incident"}
    assert set(incidents) == {reference, other}
    held = incidents[reference]
    # Every personal column of the raw row is in the export.
    db = sqlite3.connect(tmp_path / "var" / "ess.db")
    columns = {r[1] for r in db.execute("PRAGMA table_info(incidents)")}
    db.close()
    internal = {"id", "source_event", "version", "reporter_key", "phone_key", "lang", "drill",
                "location_source", "updated_at"}
    # The analytics columns (migrations 0150/0151) are computed from what is exported (the
    # areas, the location, the report time, the timeline's stages), coarse, kept after an
    # erasure for the statistics; the export lists them under their own heading
    # (docs/pdpa.md), with the values the raw row holds.
    derived = {"synthetic", "province", "district", "station", "cell", "delivered_at",
               "acked_at", "en_route_at", "on_scene_at", "closed_at", "help_level",
               "help_agency", "eta_minutes", "escalations", "local_day", "local_week",
               "local_month", "hour_of_week", "delivered_s", "acked_s", "on_scene_s",
               "closed_s", "eta_over_s"}
    statistics = held["derived, kept for statistics"]
    assert set(statistics) == derived
    assert columns - internal - derived <= set(held) | {"timeline"}
    db = sqlite3.connect(tmp_path / "var" / "ess.db")
    province, cell, day, escalations = db.execute(
        "SELECT province, cell, local_day, escalations FROM incidents WHERE reference = ?",
        (reference,)).fetchone()
    db.close()
    assert (statistics["province"], statistics["cell"], statistics["local_day"],
            statistics["escalations"]) == (province, cell, day, escalations)
    assert statistics["province"] and statistics["cell"] and statistics["synthetic"] is False
    assert held["phone"] == "+66812345678" and held["location"]["lat"] == 16.8211
    assert [e["kind"] for e in held["timeline"]] == ["reported"]
    db = sqlite3.connect(tmp_path / "var" / "ess.db")
    [(sent,)] = db.execute("SELECT count(*) FROM outbox o JOIN incidents i "
                           "ON i.id = o.incident_id WHERE i.reference = ?", (reference,))
    db.close()
    assert len(held["messages"]) == sent
    unsealed = ess(tmp_path, "subject", "unseal", str(out), stdin=password + "\n")
    assert unsealed.returncode == 0 and json.loads(unsealed.stdout) == data
    wrong = ess(tmp_path, "subject", "unseal", str(out), stdin="nope\n")
    assert wrong.returncode == 2 and "wrong password" in wrong.stderr

    # A backup of the data, taken before the erase.
    backup = tmp_path / "backup"
    backup.mkdir()
    for part in (tmp_path / "var").glob("ess.db*"):
        shutil.copy(part, backup / part.name)
    keys_before = _vault_wrapped(tmp_path)
    assert len(keys_before) == 4  # each report's, each terminal conversation's

    refused = ess(tmp_path, "subject", "erase", "--phone", "0812345678", "--reason", "asked")
    assert refused.returncode == 2 and "add --yes" in refused.stderr
    erased = ess(tmp_path, "subject", "erase", "--phone", "0812345678", "--reason",
                 "the reporter asked by phone", "--yes")
    assert erased.returncode == 0, erased.stderr
    assert "4 record(s) erased" in erased.stdout  # two reports, two conversations

    shown = json.loads(ess(tmp_path, "incidents", "show", reference, "--json").stdout)
    assert shown["phone"] == shown["location"] == shown["details"] == "[erased]"
    assert shown["type"] == "threat"
    again = json.loads(ess(tmp_path, "subject", "find", "--phone", "0812345678",
                           "--json").stdout)
    assert again["records"] == []
    assert figures(ess(tmp_path, "stats", "--json").stdout) == stats

    # Nothing of the old keys is left in the vault file, and the backup opens nothing.
    vault_bytes = b"".join(p.read_bytes() for p in (tmp_path / "var").glob("ess-keys.db*"))
    assert not any(k in vault_bytes for k in keys_before)
    assert _vault_wrapped(tmp_path) == []
    service = Sealer(parse_keys((tmp_path / "var" / "secret.key").read_text().strip()))
    copy = sqlite3.connect(backup / "ess.db")
    rows = copy.execute("SELECT phone, location, reporter, details FROM incidents").fetchall()
    outbox = copy.execute("SELECT recipient, payload FROM outbox").fetchall()
    copy.close()
    assert len(rows) == 2
    for phone, location, reporter, details in rows:
        for blob in (phone, location, reporter):
            with pytest.raises(SealError):
                service.open(blob)
        hidden = json.loads(details).get("_sealed")
        if hidden:
            with pytest.raises(SealError):
                service.open(base64.b64decode(hidden))
    for recipient, payload in outbox:
        for blob in (recipient, payload):
            with pytest.raises(SealError):
                service.open(blob)
    raw = b"".join(p.read_bytes() for p in backup.iterdir())
    assert b"+66812345678" not in raw and b"0812345678" not in raw

    trail = json.loads(ess(tmp_path, "audit", "show", "--subject", subject, "--json").stdout)
    assert {"subject.find", "subject.export", "subject.erase"} <= {r["action"] for r in trail}
    listing = json.loads(ess(tmp_path, "subject", "requests", "--all", "--json").stdout)
    assert sorted(r["kind"] for r in listing) == ["access", "erasure"]
    assert all(r["status"] == "done" for r in listing)
    assert ess(tmp_path, "audit", "verify").returncode == 0


def test_requests_have_deadlines_and_refusals_keep_their_reason(tmp_path: Path) -> None:
    opened = ess(tmp_path, "subject", "request", "access", "--phone", "0812345678",
                 "--received", "2026-11-20")
    assert opened.returncode == 0, opened.stderr
    assert "due 2026-12-20" in opened.stdout
    request = opened.stdout.split()[2]
    erasure = ess(tmp_path, "subject", "request", "erasure", "--line-user", "U" + "a" * 32)
    assert erasure.returncode == 0
    listing = json.loads(ess(tmp_path, "subject", "requests", "--json").stdout)
    assert [r["kind"] for r in listing] == ["access", "erasure"]  # soonest deadline first
    no_reason = ess(tmp_path, "subject", "refuse", request, "--reason", " ")
    assert no_reason.returncode == 2 and "written reason" in no_reason.stderr
    refused = ess(tmp_path, "subject", "refuse", request, "--reason",
                  "the requester could not show it is their number")
    assert refused.returncode == 0
    closed = json.loads(ess(tmp_path, "subject", "requests", "--all", "--json").stdout)
    mine = next(r for r in closed if r["id"] == request)
    assert mine["status"] == "refused" and "could not show" in mine["reason"]
    twice = ess(tmp_path, "subject", "refuse", request, "--reason", "again")
    assert twice.returncode == 2 and "refused already" in twice.stderr


def test_record_of_processing_due_breach_and_keys(tmp_path: Path) -> None:
    record = ess(tmp_path, "pdpa", "record")
    assert record.returncode == 0, record.stderr
    text = record.stdout
    assert text.startswith("# Record of processing activities (PDPA s.39)")
    for title in ("Emergency report (incident)", "Social-welfare case", "Volunteers",
                  "Staff accounts"):
        assert f"## {title}" in text
    assert "vital interest" in text and "| Lawful basis | consent" in text
    out = tmp_path / "record.md"
    assert ess(tmp_path, "pdpa", "record", "--out", str(out)).returncode == 0
    assert out.read_text().startswith("# Record of processing")

    reference = report(tmp_path)
    due = ess(tmp_path, "pdpa", "due", "--days", "7", "--json")
    assert due.returncode == 0 and json.loads(due.stdout) == []  # open reports stay
    assert "0 record(s) or message(s) erased" in ess(tmp_path, "pdpa", "retain").stdout

    [key_id] = ess(tmp_path, "keys", "list").stdout.split()
    opened = ess(tmp_path, "breach", "open", "--keys", key_id, "--description", "stolen")
    assert opened.returncode == 0, opened.stderr
    assert "1 record(s) affected" in opened.stdout and reference in opened.stdout
    assert "+66812345678" not in opened.stdout and "# Personal data breach" in opened.stdout
    listed = ess(tmp_path, "breach", "list")
    assert "notify by" in listed.stdout and "(72 h left)" in listed.stdout
    assert "0 data key(s) re-wrapped" in ess(tmp_path, "keys", "rewrap").stdout


def test_a_broken_record_of_processing_names_every_problem(tmp_path: Path) -> None:
    from bot.privacy.processing import ProcessingError, load_processing

    bad = tmp_path / "processing.yaml"
    bad.write_text("controller: {name: x, contact: y}\nkinds:\n  incident:\n"
                   "    title: t\n    purposes: []\n    lawful_basis: [{basis: whim, "
                   "section: s}]\n    subjects: [a]\n    data: [b]\n    sensitive: true\n"
                   "    recipients: [c]\n    transfers_abroad: none\n"
                   "    retention: {keep_days: 0}\n  case: {title: t}\n")
    with pytest.raises(ProcessingError) as caught:
        load_processing(bad)
    problems = "\n".join(caught.value.problems)
    assert "kinds.incident.purposes: a list of texts" in problems
    assert "kinds.incident.lawful_basis: each item" in problems
    assert "kinds.incident.retention.keep_days: a whole number" in problems
    assert "kinds.case: missing purposes" in problems
    twice = tmp_path / "twice.yaml"
    twice.write_text("controller: {name: x, contact: y}\nkinds: {a: 1}\nkinds: {b: 2}\n")
    with pytest.raises(ProcessingError, match="duplicate key"):
        load_processing(twice)
