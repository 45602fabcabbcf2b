"""The board's front door: Argon2id passwords, sessions in the shared store, CSRF, throttling.

A session is a random token in an `HttpOnly; Secure; SameSite=Strict` cookie; the store keeps
only its keyed digest, so a disable (or a logout) ends it on every process at once. The CSRF
token is an HMAC of the session token: nothing more to store, and a page of another site can
neither read it nor make it. Login is throttled per account and per client address with the
shared token buckets; the answer to a wrong login never says whether the login exists.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bot.staff import StaffMember
from channels.board import totp
from storage.ports import Limit, RateLimits, StaffStore

COOKIE = "ess_board"
SESSION_HOURS = 12
TOKEN_HOURS = 72
MIN_PASSWORD = 10
MAX_PASSWORD = 256
# Five tries per account, thirty per address, each bucket refilled over 15 minutes.
ACCOUNT_TRIES, ADDRESS_TRIES, TRY_PERIOD = 5, 30, 900.0

_hasher = PasswordHasher()  # argon2-cffi's defaults are Argon2id (RFC 9106 low-memory)
# Verified when the login is unknown, so a wrong login costs as long as a wrong password.
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_problem(password: str) -> str | None:
    """Why a new password is refused (a catalog key), or None."""
    if len(password) < MIN_PASSWORD:
        return "board.password_short"
    if len(password) > MAX_PASSWORD:
        return "board.password_long"
    return None


async def verify_password(stored: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(stored or _DUMMY, password[:MAX_PASSWORD]) and bool(stored)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)  # Argon2 is slow on purpose: not on the loop


def new_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_for(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"ess-board-csrf", hashlib.sha256).hexdigest()


def csrf_ok(session_token: str, sent: str) -> bool:
    return hmac.compare_digest(csrf_for(session_token).encode(), sent.encode())


def login_limits(login: str, address: str) -> list[Limit]:
    return [Limit(f"board:login:account:{login.casefold()}", ACCOUNT_TRIES, TRY_PERIOD),
            Limit(f"board:login:address:{address}", ADDRESS_TRIES, TRY_PERIOD)]


@dataclass(frozen=True, slots=True)
class LoginResult:
    """`member` and `token` on success; otherwise `problem` (a catalog key, the same for an
    unknown login, a wrong password and a disabled account). `account` (the existing
    account's login, "" for an unknown one) and `outcome` are for the audit trail only."""

    member: StaffMember | None = None
    token: str = ""
    problem: str = ""
    account: str = ""
    outcome: str = "ok"


# What the audit trail says of a refused sign-in (never shown on the page).
LOCKED_OUT, UNKNOWN, DISABLED, WRONG_PASSWORD = ("locked_out", "unknown_login", "disabled",
                                                 "wrong_password")
TOTP_NOT_ENROLLED, TOTP_FAILED = "totp_not_enrolled", "totp_failed"


async def log_in(staff: StaffStore, limits: RateLimits, login: str, password: str,
                 address: str, now: datetime, *, code: str = "",
                 totp_roles: Sequence[str] = ()) -> LoginResult:
    """Password, then (when enrolled, or required for one of the member's roles) a one-time
    code; every try of either takes from the same per-account and per-address buckets."""
    login = login.strip()[:64]
    locked = await limits.take(login_limits(login, address), now) is not None
    member = await staff.get(login) if login else None
    account = member.login if member else ""
    if locked:
        return LoginResult(problem="board.locked_out", account=account, outcome=LOCKED_OUT)
    stored = await staff.password_hash(login) if member and not member.disabled else None
    if not await verify_password(stored, password) or member is None:
        outcome = UNKNOWN if member is None else DISABLED if member.disabled else \
            WRONG_PASSWORD
        return LoginResult(problem="board.login_failed", account=account, outcome=outcome)
    # Past the password only: these answers say nothing about which logins exist.
    secret = await staff.totp_secret(member.login)
    if secret is None and any(role in member.roles for role in totp_roles):
        return LoginResult(problem="board.totp_not_enrolled", account=account,
                           outcome=TOTP_NOT_ENROLLED)
    if secret is not None:
        step = totp.matching_step(secret, code[:16], now)
        if step is None or not await staff.use_totp_step(member.login, step):
            # wrong, stale or replayed
            return LoginResult(problem="board.totp_failed", account=account,
                               outcome=TOTP_FAILED)
    token = new_token()
    await staff.open_session(token, member.login, now, now + timedelta(hours=SESSION_HOURS))
    return LoginResult(member, token, account=account,
                       outcome="password+totp" if secret is not None else "password")


async def set_password_link(staff: StaffStore, login: str, now: datetime,
                            base_url: str = "") -> str:
    """A one-time link to set the password (the first one, or after a reset)."""
    token = new_token()
    await staff.issue_token(login, token, now + timedelta(hours=TOKEN_HOURS))
    return f"{base_url.rstrip('/')}/board/password?token={token}"
