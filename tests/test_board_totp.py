"""The board's second factor over HTTP: a right code signs in, a wrong, missing or replayed
one does not, a role that needs it cannot sign in without one enrolled, and wrong codes are
throttled with the passwords. The code arithmetic against RFC 6238's own test vectors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.staff import StaffMember
from bot.types import utcnow
from channels.board import totp, totp_roles_setting
from config.settings import Settings, SettingsError
from tests.test_board import CHIANG_MAI, PHITSANULOK, SECRETS, add, client, services_of, sign_in

__all__ = ["client"]  # the fixture, shared with tests/test_board.py

RESPONDER = StaffMember("dao", "Dao", "en", ("responder",), ("65",))


@pytest.mark.parametrize(("at", "code"), [
    (59, "287082"), (1111111109, "081804"), (1111111111, "050471"),
    (1234567890, "005924"), (2000000000, "279037"), (20000000000, "353130")])
def test_codes_are_rfc_6238s(at: int, code: str) -> None:
    # RFC 6238 appendix B (SHA-1, the 8-digit values' last 6 digits are the 6-digit code).
    secret = b"12345678901234567890"
    moment = datetime.fromtimestamp(at, UTC)
    assert totp.code_at(secret, totp.step_of(moment)) == code
    assert totp.matching_step(secret, code, moment) == at // 30
    assert totp.matching_step(secret, code[:5] + str((int(code[5]) + 1) % 10), moment) is None
    assert totp.matching_step(secret, "12345", moment) is None
    assert totp.matching_step(secret, "١٢٣٤٥٦", moment) is None  # digits, but not ASCII


def test_the_provisioning_uri_is_an_authenticator_apps() -> None:
    uri = totp.provisioning_uri(b"12345678901234567890", "som chai")
    assert uri == ("otpauth://totp/ESS%20Board%3Asom%20chai?secret="
                   "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ESS+Board&algorithm=SHA1"
                   "&digits=6&period=30")


def test_the_roles_that_need_a_code_come_from_the_settings() -> None:
    def roles(value: str) -> tuple[str, ...]:
        return totp_roles_setting(Settings(extra={"ESS_BOARD_TOTP_ROLES": value}))

    assert totp_roles_setting(Settings()) == ("supervisor", "admin")
    assert roles("none") == ()
    assert roles("analyst, admin") == ("analyst", "admin")
    with pytest.raises(SettingsError, match="chief"):
        roles("chief")


async def test_a_right_code_signs_in_once_and_a_wrong_or_missing_one_never(
        client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)  # a supervisor: enrolled by the helper
    secret = SECRETS["somchai"]
    step = totp.step_of(utcnow())
    missing = await sign_in(client, "somchai", code="")
    wrong = await sign_in(client, "somchai", code=totp.code_at(secret, step + 5))
    for refused in (missing, wrong):
        assert refused.status == 401 and "ess_board" not in refused.cookies
        assert "one-time code is wrong" in await refused.text()
    right = totp.code_at(secret, step)
    signed_in = await sign_in(client, "somchai", code=right)
    assert signed_in.status == 303 and signed_in.cookies["ess_board"].value
    client.session.cookie_jar.clear()
    replayed = await sign_in(client, "somchai", code=right)
    assert replayed.status == 401 and "ess_board" not in replayed.cookies
    older = await sign_in(client, "somchai", code=totp.code_at(secret, step - 1))
    assert older.status == 401  # within the drift, but before the code already used
    assert (await client.get("/board", allow_redirects=False)).status == 303


async def test_a_wrong_password_with_a_right_code_is_the_plain_wrong_login(
        client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    code = totp.code_at(SECRETS["somchai"], totp.step_of(utcnow()))
    response = await sign_in(client, "somchai", "wrong password!", code=code)
    assert response.status == 401
    assert "login or the password is wrong" in await response.text()
    # The code was not spent by a sign-in that failed on its password.
    assert (await sign_in(client, "somchai", code=code)).status == 303


async def test_a_role_that_needs_a_code_cannot_sign_in_without_one_enrolled(
        client: TestClient[Any, Any]) -> None:
    await add(client, RESPONDER)  # a responder needs no code by default
    assert (await sign_in(client, "dao")).status == 303
    client.session.cookie_jar.clear()
    staff = services_of(client).storage.staff
    await add(client, CHIANG_MAI)
    await staff.set_totp("anong", None)
    response = await sign_in(client, "anong", code="123456")
    assert response.status == 403 and "ess staff totp" in await response.text()
    assert "ess_board" not in response.cookies
    # A responder who enrolled anyway signs in with the code from then on.
    secret = totp.new_secret()
    await staff.set_totp("dao", secret)
    assert (await sign_in(client, "dao", code="")).status == 401
    code = totp.code_at(secret, totp.step_of(utcnow()))
    assert (await sign_in(client, "dao", code=code)).status == 303


async def test_wrong_codes_are_throttled_like_wrong_passwords(
        client: TestClient[Any, Any]) -> None:
    await add(client, PHITSANULOK)
    secret = SECRETS["somchai"]
    step = totp.step_of(utcnow())
    for n in range(5):
        response = await sign_in(client, "somchai", code=totp.code_at(secret, step + 10 + n))
        assert response.status == 401
    locked = await sign_in(client, "somchai", code=totp.code_at(secret, step))
    assert locked.status == 429 and "locked for 15 minutes" in await locked.text()
