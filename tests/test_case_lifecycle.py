"""The case and referral machines, Thai IDs and birth years as typed."""

from __future__ import annotations

from datetime import date

import pytest

from bot.case import (
    Case,
    Person,
    duplicate_texts,
    is_case_reference,
    new_case_reference,
    normalize_case_reference,
)
from bot.thai_id import birth_year_ce, display_thai_id, normalize_thai_id
from bot.types import Location, LocationSource
from routing.case_lifecycle import CASES, REFERRALS, InvalidTransition, move_case, move_referral

TODAY = date(2026, 12, 1)


def test_the_whole_case_path_including_reopen() -> None:
    state = "new"
    for trigger in ("screen", "assess", "refer", "accept", "start_service"):
        state = move_case(state, trigger)
    assert state == "in_service"
    assert move_case(state, "close", supervisor=True) == "closed"
    reopened = move_case("closed", "reopen", reason="payment stopped")
    assert reopened == "reopened"
    assert move_case(reopened, "screen") == "screening"


def test_rejection_needs_a_reason_and_closing_a_supervisor() -> None:
    with pytest.raises(InvalidTransition, match="reason"):
        move_case("referred", "reject", reason="  ")
    assert move_case("referred", "reject", reason="income above the limit") == "rejected"
    with pytest.raises(InvalidTransition, match="supervisor"):
        move_case("in_service", "close")
    with pytest.raises(InvalidTransition):
        move_case("new", "close", supervisor=True)
    with pytest.raises(InvalidTransition):
        move_case("nonsense", "screen")
    assert CASES.allowed("referred") == ["accept", "reject"]


def test_referral_states() -> None:
    assert move_referral("pending", "accept") == "accepted"
    assert move_referral("accepted", "done") == "done"
    assert move_referral("accepted", "revoke") == "revoked"
    with pytest.raises(InvalidTransition):
        move_referral("done", "revoke")
    with pytest.raises(InvalidTransition, match="reason"):
        move_referral("pending", "reject")
    assert REFERRALS.allowed("pending") == ["accept", "reject", "revoke"]


def test_case_references() -> None:
    ref = new_case_reference()
    assert is_case_reference(ref) and ref.startswith("CASE-")
    assert normalize_case_reference("case 7k3f9") == "CASE-7K3F9"
    assert not is_case_reference("ESS-7K3F9")


@pytest.mark.parametrize("typed,expected", [
    ("1101700230708", "1101700230708"),
    ("1-1017-00230-70-8", "1101700230708"),
    ("๑๑๐๑๗๐๐๒๓๐๗๐๘", "1101700230708"),
    ("1101700230709", None),  # wrong check digit
    ("110170023070", None),  # 12 digits
    ("0101700230708", None),
    ("abcdefghijklm", None),
    ("", None),
])
def test_thai_id_check_digit(typed: str, expected: str | None) -> None:
    assert normalize_thai_id(typed) == expected


def test_thai_id_is_masked_for_display() -> None:
    assert display_thai_id("1101700230708") == "x-xxxx-xxxxx-70-8"


@pytest.mark.parametrize("typed,expected", [
    ("2499", 1956), ("1956", 1956), ("70", 1956), ("๒๔๙๙", 1956), ("0", 2026),
    ("2580", None),  # BE 2580 = CE 2037: in the future
    ("2030", None), ("1850", None), ("131", None), ("-5", None), ("abc", None), ("", None),
    ("12345", None),
])
def test_birth_year_in_either_era_or_as_an_age(typed: str, expected: int | None) -> None:
    assert birth_year_ce(typed, TODAY) == expected


def test_duplicate_texts_use_ids_and_a_rounded_place() -> None:
    case = Case("CASE-7K3F9", "sms:x", "sms", "th", "65",
                Location(16.82113, 100.26594, LocationSource.REPORTER_PIN),
                Person(1956, "female", thai_id="1101700230708"))
    assert duplicate_texts(case) == ["thai_id:1101700230708",
                                     "match:1956|female|pin:16.821,100.266"]
