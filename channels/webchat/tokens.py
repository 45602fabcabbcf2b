"""Signed, unguessable, expiring web-chat conversation tokens.

A token is `<id>.<issued>.<mac>`: a random 144-bit conversation id, when it was issued
(seconds, base 36), and an HMAC-SHA256 over both with the web-chat key. The id alone is never
enough to join a conversation, and a token survives reconnects and reloads of the tab (the
page keeps it in sessionStorage, or only in memory when silent).

A token expires `MAX_AGE` after it was issued; a hello with a token older than `RENEW_AFTER`
gets a fresh one for the same conversation, so an open conversation never expires under a
person's hands, while a token copied from a device stops working a day later at most. The
quick exit revokes the conversation in the store (`storage.revocations`): every process then
refuses every token of it. Keys rotate: the first signs, every key verifies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from channels.bodies import secret_equal
from storage.crypto import secret_file

KEY_FILE = "webchat.key"
KEY_BYTES = 32
MAX_AGE = 24 * 3600.0
RENEW_AFTER = 3600.0
MAX_TOKEN = 100


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


@dataclass(frozen=True, slots=True)
class Checked:
    """A genuine, unexpired token: its conversation, and whether to hand out a fresh one."""

    conversation: str
    issued: float
    renew: bool


class TokenSigner:
    """Issues and checks conversation tokens; `keys` newest first (the first signs)."""

    def __init__(self, *keys: bytes, max_age: float = MAX_AGE,
                 renew_after: float = RENEW_AFTER) -> None:
        if not keys or any(len(k) < 16 for k in keys):
            raise ValueError("a web-chat key must be at least 16 bytes")
        self._keys = keys
        self.max_age = max_age
        self.renew_after = renew_after

    @classmethod
    def from_setting(cls, value: str) -> TokenSigner:
        """`ESS_WEBCHAT_SECRET`: one secret, or several separated by commas, newest first."""
        return cls(*(part.strip().encode() for part in value.split(",") if part.strip()))

    @classmethod
    def from_file(cls, folder: Path) -> TokenSigner:
        """The key in the data folder, created (readable by the owner only) on first use."""
        text = secret_file(folder / KEY_FILE, lambda: _b64(secrets.token_bytes(KEY_BYTES)))
        return cls(text.encode())

    @staticmethod
    def _mac(key: bytes, body: str) -> str:
        return _b64(hmac.new(key, b"web2:" + body.encode(), hashlib.sha256).digest()[:24])

    def issue(self, conversation: str | None = None, now: float | None = None
              ) -> tuple[str, str]:
        """A token for `conversation` (a new one when None): (conversation id, token)."""
        conversation = conversation or _b64(secrets.token_bytes(18))
        issued = int(time.time() if now is None else now)
        body = f"{conversation}.{_base36(issued)}"
        return conversation, f"{body}.{self._mac(self._keys[0], body)}"

    def check(self, token: object, now: float | None = None) -> Checked | None:
        """What a genuine token of any configured key says, or None (forged, expired,
        malformed, or of the old format that never expired)."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN:
            return None
        conversation, _, rest = token.partition(".")
        stamp, _, mac = rest.partition(".")
        if not conversation or not stamp or not mac:
            return None
        body = f"{conversation}.{stamp}"
        if not any(secret_equal(mac, self._mac(key, body)) for key in self._keys):
            return None
        try:
            issued = float(int(stamp, 36))
        except ValueError:
            return None
        age = (time.time() if now is None else now) - issued
        if not -300 <= age <= self.max_age:  # five minutes of clock skew between processes
            return None
        return Checked(conversation, issued, age >= self.renew_after)
